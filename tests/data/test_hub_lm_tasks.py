"""The generative Hub tasks (tasks/gpt2-counterfact.yaml, smollm2-counterfact.yaml,
qwen2.5-instruct-counterfact.yaml) on local fixtures in the Hub's formats: the ``hub-prompts`` source
reads a CounterFact Parquet repo through the real ``datasets.load_dataset``, and ``hub-causal-lm`` loads
tiny GPT-2, Llama (SmolLM2) and Qwen2 checkpoints with real byte-level BPE tokenizers through
``from_pretrained`` (tests/helpers_hub_lm.py). What is checked is read back independently: the
tokenizer's own encodings, the chat template's own text, and the model's own log-probabilities."""
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from helpers_hub_lm import (
    QWEN_DEFAULT_SYSTEM,
    counterfact_dataset,
    counterfact_rows,
    tiny_bert_classifier,
    tiny_distilbert_classifier,
    tiny_gpt2,
    tiny_qwen2_instruct,
    tiny_smollm2,
)
from xbench.cli import main
from xbench.core.errors import XBenchError
from xbench.data.hub_prompts import HubPrompts, subject_span
from xbench.explainers.base import Explainer
from xbench.features.lm import prompt_tokens
from xbench.tasks.catalogue import load_task_file, parse_task
from xbench.tasks.task import load_task

REPO = Path(__file__).resolve().parents[2]
#: shipped task -> fixture model folder
SHIPPED = {"gpt2-counterfact": "gpt2", "smollm2-counterfact": "smollm2", "qwen2.5-instruct-counterfact": "qwen2"}
N = len(counterfact_rows())


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub-lm")
    out = {"gpt2": tiny_gpt2(root / "gpt2", seed=1), "smollm2": tiny_smollm2(root / "smollm2", seed=2),
           "qwen2": tiny_qwen2_instruct(root / "qwen2", seed=3),
           "counterfact": counterfact_dataset(root / "counterfact")}
    # a fact whose true target is no word of the tokenizers' corpus: several BPE tokens
    rows = counterfact_rows()
    rows[2] = {**rows[2], "target_true": " Zyxqvwkj"}
    out["long-answer"] = counterfact_dataset(root / "long-answer", rows)
    out["root"] = root
    return out


def shipped(name: str) -> dict:
    return yaml.safe_load((REPO / "tasks" / f"{name}.yaml").read_text())


def on_fixture(name: str, fx, model: str | None = None, data: str = "counterfact", **top) -> dict:
    """The shipped task file with its model and dataset pointed at the local fixture folders."""
    d = shipped(name)
    d["model"]["params"]["name"] = str(fx[model or SHIPPED[name]])
    d["dataset"]["params"]["path"] = str(fx[data])
    d.update(top)
    return d


def spec_of(d: dict, fx, stem: str = "fixture"):
    return parse_task(d, str(fx["root"] / f"{stem}.yaml"))


def tokenizer(fx, model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(fx[model]))


def log_probs(model, ids: list[int]) -> torch.Tensor:
    """The checkpoint's own log-softmax over the vocabulary at every position of one sequence."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits
    return torch.log_softmax(logits[0].double(), -1)


# -- the dataset source ----------------------------------------------------------------------
def test_counterfact_rows_become_prompt_records(fx):
    src = HubPrompts(path=str(fx["counterfact"]), keep=["relation_id"])
    assert src.unavailable() is None  # a local folder needs no network
    s = src.load(0)
    rows = counterfact_rows()
    assert s.train == [] and len(s.test) == N and s.label_names == ["answer", "other"]
    assert s.info["with_rationale"] == N and s.info["subject_not_found"] == 0
    for i, (r, row) in enumerate(zip(s.test, rows)):
        assert r.words == row["prompt"].split() and r.label == 0 and r.id == f"train-{i}"
        # the dataset's leading space is not part of the answer (the lm modality adds its own)
        assert r.meta["answer"] == row["target_true"][1:] and r.meta["foil"] == row["target_false"][1:]
        assert r.meta["relation_id"] == row["relation_id"]
        # gold: the words that overlap the subject, read off relation_prefix (prompt = prefix + subject + suffix)
        a = len(row["relation_prefix"]) + len(row["subject"]) - len(row["subject"].lstrip())
        b = len(row["relation_prefix"]) + len(row["subject"])
        pos, want = 0, []
        for w in r.words:
            i = row["prompt"].index(w, pos)
            want.append(int(i < b and a < i + len(w)))
            pos = i + len(w)
        assert r.rationale == want, r.id
    marked = {r.id: [w for w, g in zip(r.words, r.rationale) if g] for r in s.test}
    assert marked["train-2"] == ["Toko", "Yasuda,"]  # the subject's last word carries punctuation
    assert marked["train-6"] == ["Apple's"]  # "Apple" inside a word
    assert marked["train-1"] == ["Edwin", "of", "Northumbria"]  # not the first "of"
    assert marked["train-8"] == ["Émile", "Zola"]


def test_source_limits_nulls_and_subject_search(fx):
    s = HubPrompts(path=str(fx["counterfact"]), n_test=3, foil=None, subject=None).load(0)
    assert len(s.test) == 3 and all("foil" not in r.meta and r.rationale is None for r in s.test)
    assert subject_span("The capital of France is", " France") == (15, 21)
    assert subject_span("a bb  cc bb cc", "bb cc") == (2, 8)  # the first, any whitespace between its words
    assert subject_span("abb cc bb cc", " bb cc") == (7, 12)  # one that starts a word first
    assert subject_span("Apple's", "Apple") == (0, 5) and subject_span("xyz", "Q") is None


def test_source_errors_are_one_line(fx, tmp_path):
    rows = counterfact_rows()
    rows[4] = {**rows[4], "target_true": "  "}
    bad = counterfact_dataset(tmp_path / "bad", rows)
    cases = [
        (dict(path=str(fx["counterfact"]), answer="answer"),
         f"field 'dataset.params.answer': dataset '{fx['counterfact']}' split 'train' has no column 'answer'"),
        (dict(path=str(fx["counterfact"]), foil="nope"), "has no column 'nope' (or null for none)"),
        (dict(path=str(fx["counterfact"]), keep=["nope"]), "field 'dataset.params.keep'"),
        (dict(path=str(fx["counterfact"]), split="test"), "split 'test': cannot load"),
        (dict(path=str(fx["counterfact"]), n_test=0), "field 'dataset.params.n_test' must be a positive integer"),
        (dict(path=str(bad)), "example train-4: field 'target_true': the answer must be a non-empty string"),
        (dict(path=str(fx["counterfact"]), id="relation_id"), "example P103: the example id repeats"),
        (dict(), "field 'dataset.params.path' is required"),
    ]
    for params, needle in cases:
        src = HubPrompts(**params)
        src.task_path = str(tmp_path / "t.yaml")
        with pytest.raises(XBenchError) as e:
            src.load(0)
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


# -- the three shipped tasks on the fixtures ----------------------------------------------------
def check_prompt_features(task, tok, records, chat: bool, system: str | None):
    """Features are exactly the prompt's words; each word's tokens are the tokenizer's encoding of it;
    every other token is the template's (or a special token), read back from the template's own text."""
    for ex, r in zip(task.examples, records):
        assert ex.features == r.words and ex.word_index.tolist() == list(range(len(r.words)))
        ids, fid = ex.input_ids[:ex.n_prompt], ex.feature_ids[:ex.n_prompt]
        assert (ex.feature_ids[ex.n_prompt:] == -1).all()  # teacher-forced answer tokens are never features
        text = " ".join(r.words)
        if chat:
            msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
            full = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            assert ids.tolist() == tok(full, add_special_tokens=False)["input_ids"]
            cut = full.rindex(text)
            pos = np.flatnonzero(fid >= 0)
            # the user's tokens are one contiguous run spelling the prompt; the rest is the template
            assert pos.tolist() == list(range(pos[0], pos[-1] + 1))
            assert tok.decode(ids[pos].tolist()) == text
            assert tok.decode(ids[:pos[0]].tolist()) == full[:cut]
            assert tok.decode(ids[pos[-1] + 1:].tolist()) == full[cut + len(text):]
            assert not set(ids[pos].tolist()) & set(tok.all_special_ids)
        else:
            assert ids.tolist() == tok(text)["input_ids"] and (fid >= 0).all()
        for j, w in enumerate(r.words):
            assert tok.decode(ids[fid == j].tolist()).strip() == w, (ex.id, w)
        if r.rationale is not None:
            assert ex.rationale.tolist() == r.rationale


def test_gpt2_contrastive_task(fx):
    from transformers import AutoModelForCausalLM

    spec = spec_of(on_fixture("gpt2-counterfact", fx), fx)
    task = load_task(spec, n=N)
    tok, records = task.model.tokenizer, HubPrompts(path=str(fx["counterfact"])).load(0).test
    assert type(task.module).__name__ == "GPT2LMHeadModel" and type(tok).__name__ == "GPT2Tokenizer"
    assert tok.unk_token == tok.eos_token == "<|endoftext|>" and tok.pad_token is None
    assert task.removal.token_id == tok.unk_token_id == len(tok) - 1
    check_prompt_features(task, tok, records, chat=False, system=None)
    ref = AutoModelForCausalLM.from_pretrained(str(fx["gpt2"])).eval()
    out = task.model.outputs([ex.row() for ex in task.examples])
    assert np.isfinite(out).all() and (out[:, 1] == 0).all()
    for ex, r, (d, _) in zip(task.examples, records, out):
        answer = tok(" " + r.meta["answer"], add_special_tokens=False)["input_ids"]
        foil = tok(" " + r.meta["foil"], add_special_tokens=False)["input_ids"]
        assert (ex.readout.kind, ex.readout.answer, ex.readout.foil) == ("contrastive", tuple(answer), foil[0])
        assert len(foil) == 1
        lp = log_probs(ref, ex.input_ids.tolist())[-1]
        assert d == pytest.approx(float(lp[answer[0]] - lp[foil[0]]), abs=1e-4)
        assert ex.label == 0  # target: label, the dataset's answer


def test_smollm2_continuation_task_scores_every_answer_token(fx):
    from transformers import AutoModelForCausalLM

    spec = spec_of(on_fixture("smollm2-counterfact", fx, data="long-answer"), fx)
    task = load_task(spec, n=N)
    tok = task.model.tokenizer
    records = HubPrompts(path=str(fx["long-answer"]), foil=None).load(0).test
    assert type(task.module).__name__ == "LlamaForCausalLM" and tok.convert_ids_to_tokens(0) == "<|endoftext|>"
    assert task.removal.token_id == tok.unk_token_id == 0
    check_prompt_features(task, tok, records, chat=False, system=None)
    ref = AutoModelForCausalLM.from_pretrained(str(fx["smollm2"])).eval()
    out = task.model.outputs([ex.row() for ex in task.examples])
    assert np.isfinite(out).all()
    for ex, r, (s, dev) in zip(task.examples, records, out):
        answer = tok(" " + r.meta["answer"], add_special_tokens=False)["input_ids"]
        assert ex.readout.answer == tuple(answer) and ex.readout.foil is None
        P = ex.n_prompt
        assert ex.input_ids.tolist() == ex.input_ids[:P].tolist() + answer[:-1]
        lp = log_probs(ref, ex.input_ids.tolist())
        steps = [lp[P - 1 + k] for k in range(len(answer))]
        assert s == pytest.approx(sum(float(st[a]) for st, a in zip(steps, answer)), abs=1e-4)
        # column 1: the best one-token deviation, max over steps of (best other token - the answer's)
        best = max(float(torch.cat([st[:a], st[a + 1:]]).max() - st[a]) for st, a in zip(steps, answer))
        assert dev == pytest.approx(s + best, abs=1e-4)
    assert len(task.examples[2].readout.answer) > 1  # " Zyxqvwkj": several tokens, all teacher-forced


@pytest.mark.parametrize("system", ["shipped", None])
def test_qwen_chat_task_features_are_the_user_turn_only(fx, system):
    from transformers import AutoModelForCausalLM

    d = on_fixture("qwen2.5-instruct-counterfact", fx)
    if system is None:
        del d["system_prompt"]  # the template's own default system message
    else:
        system = d["system_prompt"]
    task = load_task(spec_of(d, fx), n=N)
    tok = task.model.tokenizer
    records = HubPrompts(path=str(fx["counterfact"]), foil=None).load(0).test
    assert type(task.module).__name__ == "Qwen2ForCausalLM" and tok.unk_token is None and tok.bos_token is None
    assert task.removal.token_id == tok.pad_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    check_prompt_features(task, tok, records, chat=True, system=system)
    text = tok.decode(task.examples[0].input_ids.tolist())
    assert (QWEN_DEFAULT_SYSTEM in text) == (system is None) and text.endswith("<|im_start|>assistant\n")
    ref = AutoModelForCausalLM.from_pretrained(str(fx["qwen2"])).eval()
    out = task.model.outputs([ex.row() for ex in task.examples])
    assert np.isfinite(out).all()
    for ex, r, (s, _) in zip(task.examples, records, out):
        answer = tok(r.meta["answer"], add_special_tokens=False)["input_ids"]  # no space after the template
        assert ex.readout.answer == tuple(answer)
        lp = log_probs(ref, ex.input_ids.tolist())
        P = ex.n_prompt
        assert s == pytest.approx(sum(float(lp[P - 1 + k, a]) for k, a in enumerate(answer)), abs=1e-4)


@pytest.mark.parametrize("name", ["gpt2-counterfact", "qwen2.5-instruct-counterfact"])
def test_token_features_are_the_prompt_tokens(fx, name):
    task = load_task(spec_of(on_fixture(name, fx, granularity="tokens"), fx), n=N)
    tok = task.model.tokenizer
    chat = bool(task.spec.chat_template)
    for ex, r in zip(task.examples, HubPrompts(path=str(fx["counterfact"])).load(0).test):
        ids = ex.input_ids[:ex.n_prompt]
        user = tok(" ".join(r.words), add_special_tokens=False)["input_ids"]
        assert ex.features == tok.convert_ids_to_tokens(user)  # the prompt's own tokens, nothing else
        pos = np.flatnonzero(ex.feature_ids >= 0)
        assert ids[pos].tolist() == user and ex.feature_ids[pos].tolist() == list(range(len(user)))
        assert (pos[0] > 0) == chat  # after the template's tokens in a chat, from the first token otherwise
        # the gold over tokens: each token takes its word's
        assert ex.rationale.tolist() == [r.rationale[w] for w in ex.word_index]


@pytest.mark.parametrize("name", list(SHIPPED))
def test_explainers_run_on_each_task(fx, name):
    task = load_task(spec_of(on_fixture(name, fx), fx), n=3)
    for ename in ("occlusion", "saliency"):
        exp = Explainer.registry.get(ename)().explain(task, task.examples, [0] * len(task.examples), 0)
        assert exp.errors == [None] * 3, exp.errors
        for ex, a in zip(task.examples, exp.attributions):
            assert a.shape == (ex.n_features,) and np.isfinite(a).all()
    assert task.fingerprint()


def test_occlusion_is_the_model_with_the_word_replaced(fx):
    """Occlusion of word j on the GPT-2 task, read back by hand: the word's tokens replaced by
    <|endoftext|> (the unk policy), every other token where it was, the contrastive score re-read."""
    from transformers import AutoModelForCausalLM

    task = load_task(spec_of(on_fixture("gpt2-counterfact", fx), fx), n=2)
    ref = AutoModelForCausalLM.from_pretrained(str(fx["gpt2"])).eval()
    exp = Explainer.registry.get("occlusion")().explain(task, task.examples, [0, 0], 0)
    unk = task.model.tokenizer.unk_token_id
    for ex, a in zip(task.examples, exp.attributions):
        ans, foil = ex.readout.answer[0], ex.readout.foil

        def d(ids):
            lp = log_probs(ref, ids)[-1]
            return float(lp[ans] - lp[foil])

        full = d(ex.input_ids.tolist())
        for j in range(ex.n_features):
            ids = np.where(ex.feature_ids == j, unk, ex.input_ids)
            assert a[j] == pytest.approx(full - d(ids.tolist()), abs=1e-4)


@pytest.mark.parametrize("model,chat", [("gpt2", False), ("qwen2", True)])
def test_a_lone_space_token_goes_with_the_next_word(fx, model, chat):
    tok = tokenizer(fx, model)
    words = ["x", "été", "1999"]
    ids, wid = prompt_tokens(tok, words, chat)
    pieces = tok.convert_ids_to_tokens(ids.tolist())
    assert "Ġ" in pieces  # the fixture vocabulary merges the space with neither "é" nor "1"
    user = np.flatnonzero(wid >= 0)
    assert tok.decode(ids[user[0]:user[-1] + 1].tolist()) == " ".join(words)
    assert (wid[user[0]:user[-1] + 1] >= 0).all()  # no token between the user's words is left out
    for j, w in enumerate(words[1:], 1):
        assert tok.decode(ids[wid == j].tolist()) == " " + w  # as " Paris": the word with its space


# -- bad input: one line each -----------------------------------------------------------------
def one_line(d: dict, fx, needle: str, n: int = N):
    with pytest.raises(XBenchError) as e:
        load_task(spec_of(d, fx), n=n)
    msg = str(e.value)
    assert "\n" not in msg and needle in msg and "fixture.yaml" in msg, msg
    return msg


def test_checkpoint_without_a_language_modelling_head(fx):
    folder = tiny_distilbert_classifier(fx["root"] / "distilbert-sst2", fx["gpt2"])
    d = on_fixture("gpt2-counterfact", fx)
    d["model"]["params"]["name"] = str(folder)
    msg = one_line(d, fx, f"field 'model.params.name': '{folder}' has no causal language-modelling head")
    assert "AutoModelForCausalLM cannot load it" in msg


def test_sequence_classifier_whose_architecture_has_a_causal_lm_class(fx):
    folder = tiny_bert_classifier(fx["root"] / "bert-sst2", fx["gpt2"])
    d = on_fixture("gpt2-counterfact", fx)
    d["model"]["params"]["name"] = str(folder)
    one_line(d, fx, "field 'model.params.name'")


def test_multi_token_answer_with_next_token(fx):
    d = on_fixture("gpt2-counterfact", fx, data="long-answer", lm_target="next_token")
    msg = one_line(d, fx, "example train-2: the answer 'Zyxqvwkj' is ")
    assert "lm_target next_token needs one token (use lm_target: continuation)" in msg
    # the same fact as a contrastive target: the same one line
    one_line(on_fixture("gpt2-counterfact", fx, data="long-answer"), fx, "example train-2: the answer 'Zyxqvwkj'")


def test_chat_template_on_a_tokenizer_without_one(fx):
    d = on_fixture("qwen2.5-instruct-counterfact", fx, model="gpt2")
    one_line(d, fx, "field 'chat_template': the tokenizer of ")


def test_replacement_the_tokenizer_lacks(fx):
    # Qwen2.5 has no unk token: the shipped pad policy is what it supports
    d = on_fixture("qwen2.5-instruct-counterfact", fx, replacement="unk")
    one_line(d, fx, "field 'replacement': the tokenizer has no unk token")


# -- the CLI, end to end, and offline -----------------------------------------------------------
def test_cli_runs_a_task_file_end_to_end(fx, tmp_path):
    d = on_fixture("qwen2.5-instruct-counterfact", fx)
    path = tmp_path / "qwen-fixture.yaml"
    path.write_text(yaml.safe_dump({**d, "name": "qwen-fixture"}))
    assert load_task_file(path).chat_template is True
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--n", "3", "--no-progress",
                 "--explainers", "occlusion,saliency,random", "--metrics", "comprehensiveness,sufficiency,token_f1"])
    assert code == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["tasks"]["qwen-fixture"]["model"]["architecture"] == "Qwen2ForCausalLM"
    scores = pd.read_csv(tmp_path / "run" / "scores.csv", keep_default_na=False)
    assert set(scores.explainer) == {"occlusion", "saliency", "random"}
    comp = scores[scores.metric.isin(["comprehensiveness", "sufficiency"])]
    assert len(comp) == 3 * 3 * 2 and (comp.error == "").all() and np.isfinite(pd.to_numeric(comp.value)).all()
    f1 = scores[scores.metric == "token_f1"]
    ok = f1.error == ""
    assert (((pd.to_numeric(f1.value[ok]) >= 0) & (pd.to_numeric(f1.value[ok]) <= 1)).all()
            and f1.error[~ok].str.startswith("skipped").all())


@pytest.fixture
def offline(monkeypatch, tmp_path):
    import datasets.config as dc
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(dc, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_tasks_say_needs_network_at_once(name, offline, tmp_path, capsys):
    spec = load_task_file(REPO / "tasks" / f"{name}.yaml")
    assert spec.modality == "lm" and spec.dataset.source == "hub-prompts" and spec.model.source == "hub-causal-lm"
    assert spec.dataset.params["path"] == "NeelNanda/counterfact-tracing" and spec.dataset.params["split"] == "train"
    t0 = time.perf_counter()
    code = main(["run", str(REPO / "tasks" / f"{name}.yaml"), "--out", str(tmp_path / "run"), "--n", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"tasks/{name}.yaml: needs network: dataset NeelNanda/counterfact-tracing" in err
    assert time.perf_counter() - t0 < 10
