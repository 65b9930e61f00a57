"""Hub text tasks on local fixtures in the Hub schemas: the ``hf-dataset`` recipes (through the real
``datasets.load_dataset``), the ``hub`` model source (``from_pretrained`` on a local folder), the
offline "needs network" path of the shipped task files, and an end-to-end run."""
import json
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers_hub import FIXTURES, minilm_dir, tiny_bert
from xbench.core import netcheck
from xbench.cli import main
from xbench.data.base import Splits
from xbench.data.hub import HFDataset, evidence_offsets, parse_marked
from xbench.core.errors import XBenchError
from xbench.models.hub import HubModel
from xbench.run.config import RunConfig
from xbench.run.runner import Runner
from xbench.tasks.catalogue import parse_task

HUB = FIXTURES / "hub"
REPO = Path(__file__).resolve().parents[2]
SHIPPED = ["sst2-distilbert", "hatexplain-bert", "eraser-movies-hub", "esnli-bert"]


def hub_features():
    """The Hub's ``datasets.Features`` of each dataset, as their loading scripts declare them."""
    import datasets as d

    return {
        "hatexplain": d.Features({
            "id": d.Value("string"),
            "annotators": d.Sequence({"label": d.ClassLabel(names=["hatespeech", "normal", "offensive"]),
                                      "annotator_id": d.Value("int32"),
                                      "target": d.Sequence(d.Value("string"))}),
            "rationales": d.Sequence(d.Sequence(d.Value("int32"))),
            "post_tokens": d.Sequence(d.Value("string"))}),
        "movie_rationales": d.Features({"review": d.Value("string"), "label": d.ClassLabel(names=["NEG", "POS"]),
                                        "evidences": d.Sequence(d.Value("string"))}),
        "sst2": d.Features({"idx": d.Value("int32"), "sentence": d.Value("string"),
                            "label": d.ClassLabel(names=["negative", "positive"])}),
    }


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    """The JSONL fixtures written as the Hub serves them: Parquet files under data/, typed."""
    import datasets as d

    root = tmp_path_factory.mktemp("hub-parquet")
    for name, feats in hub_features().items():
        src = next((HUB / name).glob("*.jsonl"))
        rows = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
        (root / name / "data").mkdir(parents=True)
        d.Dataset.from_list(rows, features=feats).to_parquet(root / name / "data" / f"{src.stem}-00000-of-00001.parquet")
    return root


def load(**params):
    src = HFDataset(**params)
    src.task_path = str(REPO / "tasks" / "x.yaml")
    assert src.unavailable() is None
    return src.load(0)


def by_id(splits):
    return {r.id: r for r in splits.test}


def marked(rec):
    return [w for w, g in zip(rec.all_words, rec.rationale) if g]


# -- HateXplain ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_hatexplain_majority_label_and_union_vs_majority_rationale(kind, parquet):
    path = str(HUB / "hatexplain") if kind == "jsonl" else str(parquet / "hatexplain")
    maj, uni = load(path=path), load(path=path, rationale_aggregation="union")
    assert maj.label_names == ["hatespeech", "normal", "offensive"] and maj.info["recipe"] == "hatexplain"
    m, u = by_id(maj), by_id(uni)
    assert list(m) == ["1001_gab", "1002_twitter", "1004_twitter", "1005_gab"]  # 1003: labels 0,1,2 -> dropped
    assert maj.info["recipe_stats"]["dropped_no_majority_label"] == 1
    assert [m[k].label for k in m] == [0, 1, 2, 1]
    # three rationale lists: majority = marked by >= 2 of 3; union = by any
    assert marked(m["1001_gab"]) == ["clown"]
    assert marked(u["1001_gab"]) == ["referee", "total", "clown", "today"]
    # two lists: majority needs both
    assert marked(m["1004_twitter"]) == ["overwrought"]
    assert marked(u["1004_twitter"]) == ["utterly", "overwrought", "drivel"]
    # a post judged normal has no rationale, even when a minority annotator gave one
    assert m["1002_twitter"].rationale is None and m["1005_gab"].rationale is None
    assert m["1001_gab"].meta["annotator_labels"] == ["hatespeech", "hatespeech", "offensive"]


def test_hatexplain_original_json_form(tmp_path):
    """The GitHub dataset.json form: annotators as a list of mappings with label names."""
    row = {"id": "9_gab", "post_tokens": ["you", "absolute", "clown"], "rationales": [[0, 0, 1], [0, 1, 1]],
           "annotators": [{"label": "offensive", "annotator_id": 1, "target": ["None"]},
                          {"label": "offensive", "annotator_id": 2, "target": ["None"]},
                          {"label": "normal", "annotator_id": 3, "target": ["None"]}]}
    (tmp_path / "hx").mkdir()
    (tmp_path / "hx" / "test.jsonl").write_text(json.dumps(row) + "\n")
    (r,) = load(path=str(tmp_path / "hx"), recipe="hatexplain").test
    assert r.label == 2 and marked(r) == ["clown"]


def test_recipe_labels_can_be_remapped():
    s = load(path=str(HUB / "hatexplain"), label_map={"hatespeech": "abusive", "offensive": "abusive",
                                                       "normal": "normal"}, label_names=["normal", "abusive"])
    assert s.label_names == ["normal", "abusive"] and [r.label for r in s.test] == [1, 0, 1, 0]


# -- ERASER movie reviews ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_movie_rationales_evidence_strings_become_char_offsets(kind, parquet):
    path = str(HUB / "movie_rationales") if kind == "jsonl" else str(parquet / "movie_rationales")
    s = load(path=path)
    assert s.label_names == ["NEG", "POS"] and [r.label for r in s.test] == [1, 0, 1]
    r0, r1, r2 = s.test
    assert r0.id == "test-0"  # the Hub schema has no id column
    # both occurrences of a repeated evidence, and one that crosses a line break in the review
    assert marked(r0) == ["masterpiece", "of", "suspense", "drags", "in", "the", "middle",
                          "masterpiece", "of", "suspense"]
    assert marked(r1) == ["overwrought", ",", "disappointing", "unremarkable"]
    assert r2.rationale is None  # no evidences
    assert s.info["recipe_stats"] == {"evidences": 5, "evidences_unmatched": 1,
                                      "evidences_matched_more_than_once": 1}


def test_evidence_alignment_respects_word_boundaries():
    review = "a goodness , not good .\ngood\tfilm"
    assert evidence_offsets(review, "good") == [(17, 21), (24, 28)]
    assert evidence_offsets(review, "good film") == [(24, 33)]
    assert evidence_offsets(review, "ness") == []


# -- e-SNLI ----------------------------------------------------------------------------------
def test_esnli_csv_through_the_csv_builder_and_data_files():
    a = load(path="csv", data_files={"test": str(HUB / "esnli" / "esnli_test.csv")}, recipe="esnli")
    b = load(path=str(HUB / "esnli"))
    assert [(r.id, r.words, r.words_b, r.rationale, r.label) for r in a.test] == \
        [(r.id, r.words, r.words_b, r.rationale, r.label) for r in b.test]


def test_parse_marked_stars():
    assert parse_marked("The *church* has *cracks* in the *ceiling.*") == (
        "The church has cracks in the ceiling.", [(4, 10), (15, 21), (29, 37)], True)
    assert parse_marked("a *b c") == ("a b c", [], False)


@pytest.mark.parametrize("agg,expected", [
    ("majority", {"1r1n": ["cracks", "ceiling."], "1r1e": ["sings", "filled", "song."],
                  "1r1c": ["church.", "baseball", "game."]}),
    ("union", {"1r1n": ["church", "cracks", "in", "the", "ceiling."],
               "1r1e": ["choir", "sings", "joyous", "songs", "filled", "with", "song."],
               "1r1c": ["church", "church.", "baseball", "game."]}),
])
def test_esnli_pairs_with_highlights_in_both_segments(agg, expected):
    s = load(path=str(HUB / "esnli"), rationale_aggregation=agg)
    assert s.label_names == ["entailment", "neutral", "contradiction"]
    assert s.info["recipe_stats"]["dropped_no_gold_label"] == 1
    recs = {r.id.split("#")[1]: r for r in s.test}
    assert [recs[k].label for k in ("1r1n", "1r1e", "1r1c")] == [1, 0, 2]
    r = recs["1r1c"]
    assert r.words[-1] == "church." and r.words_b == ["A", "choir", "singing", "at", "a", "baseball", "game."]
    assert len(r.rationale) == len(r.words) + len(r.words_b)
    for k, words in expected.items():
        assert marked(recs[k]) == words, k
    # the last "church." is marked, not the first "church"
    assert r.rationale[len(r.words) - 1] == 1 and (agg == "union") == bool(r.rationale[1])


# -- SST-2 and generic field mapping ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_sst2_recipe_and_the_same_by_field_mapping(kind, parquet):
    path = str(HUB / "sst2") if kind == "jsonl" else str(parquet / "sst2")
    s = load(path=path, split="validation")
    assert s.info["recipe"] == "sst2" and s.label_names == ["negative", "positive"]
    assert [r.id for r in s.test] == ["0", "1", "2", "3"] and [r.label for r in s.test] == [1, 0, 1, 1]
    assert all(r.rationale is None for r in s.test) and s.test[1].words == ["unflinchingly", "bleak", "and", "desperate"]
    g = load(path=path, split="validation", text="sentence", label="label", id="idx",
             label_names=["negative", "positive"])
    assert g.info["recipe"] is None
    assert [(r.id, r.words, r.label) for r in g.test] == [(r.id, r.words, r.label) for r in s.test]


def test_unlabelled_split_and_recipe_misuse_are_one_line_errors(tmp_path):
    (tmp_path / "sst").mkdir()
    (tmp_path / "sst" / "test.jsonl").write_text(json.dumps({"idx": 7, "sentence": "fine", "label": -1}) + "\n")
    cases = [
        (dict(path=str(tmp_path / "sst")), "example 7: field 'label': label -1 is out of range"),
        (dict(path=str(HUB / "sst2"), split="validation", recipe="sst2", text="sentence"),
         "field 'dataset.params.text' is set by the 'sst2' recipe"),
        (dict(path=str(HUB / "sst2"), split="validation", recipe="esnli"),
         "has no column(s) gold_label, sentence1, sentence1_marked_1"),
        (dict(path=str(HUB / "sst2"), split="validation", recipe="nope"), "field 'dataset.params.recipe' must be one of"),
        (dict(path=str(HUB / "sst2"), split="train"), "split 'train': cannot load"),
        (dict(path=str(HUB / "hatexplain"), label_names=["a", "b", "c"]), "label_names' needs label_map"),
    ]
    for params, needle in cases:
        with pytest.raises(XBenchError) as e:
            load(**params)
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


# -- availability without network -----------------------------------------------------------
@pytest.fixture
def offline(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE set and empty Hugging Face caches: nothing counts as downloaded."""
    import datasets.config as dc
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(dc, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))


def test_unavailable_names_what_needs_network(offline):
    t0 = time.perf_counter()
    assert HFDataset(path="someone/not-cached").unavailable() == \
        "needs network: dataset someone/not-cached (not in the local Hugging Face cache)"
    url = "https://example.org/esnli_test.csv"
    assert HFDataset(path="csv", data_files={"test": url}).unavailable().startswith(f"needs network: dataset files at {url}")
    assert HubModel(name="someone/no-model").unavailable() == \
        "needs network: model someone/no-model (not in the local Hugging Face cache)"
    assert HFDataset(path=str(HUB / "sst2")).unavailable() is None  # a local folder needs nothing
    assert time.perf_counter() - t0 < 5


def test_reachable_probe_is_bounded():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        assert netcheck.reachable("127.0.0.1", port, timeout=1.0)
    finally:
        srv.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    t0 = time.perf_counter()
    assert not netcheck.reachable("127.0.0.1", dead, timeout=1.0)
    assert time.perf_counter() - t0 < 2


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_hub_tasks_say_needs_network_at_once(name, offline, tmp_path, capsys):
    t0 = time.perf_counter()
    code = main(["run", str(REPO / "tasks" / f"{name}.yaml"), "--out", str(tmp_path / "run"), "--n", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"tasks/{name}.yaml: needs network: " in err
    assert time.perf_counter() - t0 < 10


# -- the hub model source on a local folder --------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    minilm_dir()
    root = tmp_path_factory.mktemp("models")
    return {
        # outputs in another order than the dataset's classes, named differently (case, space)
        "hx": tiny_bert(root / "hx", ["Offensive", "hate speech", "NORMAL"], seed=1),
        "nli": tiny_bert(root / "nli", ["LABEL_0", "LABEL_1", "LABEL_2"], seed=2),
    }


def task_spec(model_dir, dataset, **kw):
    d = {"name": kw.pop("name", "fixture"), "granularity": "words", "rationale": True, "max_length": 64,
         "dataset": {"source": "hf-dataset", "params": dataset},
         "model": {"source": "hub", "params": {"name": str(model_dir), **kw.pop("model", {})}}, **kw}
    return parse_task(d, str(REPO / "tasks" / "fixture.yaml"))


def test_model_outputs_are_put_in_the_dataset_class_order(models):
    from transformers import AutoModelForSequenceClassification

    spec = task_spec(models["hx"], {"path": str(HUB / "hatexplain")})
    splits = Splits([], [], ["hatespeech", "normal", "offensive"])
    src = HubModel(**spec.model.params)
    assert src.unavailable() is None  # a local folder loads offline
    model, tok, info = src.load(spec, splits)
    assert info["labels"] == {"model": ["Offensive", "hate speech", "NORMAL"],
                              "class_to_model_output": [1, 2, 0], "matched_by": "names"}
    assert info["num_parameters"] == sum(p.numel() for p in model.parameters()) > 0
    assert model.config.id2label == {0: "hatespeech", 1: "normal", 2: "offensive"}
    orig = AutoModelForSequenceClassification.from_pretrained(str(models["hx"])).eval()
    enc = tok(["the referee was a total clown"], return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**enc).logits, orig(**enc).logits[:, [1, 2, 0]], atol=1e-6)
    # an explicit map by output index; generic LABEL_i names are taken in order
    _, _, info = HubModel(name=str(models["hx"]), label_map={1: "hatespeech", 2: "normal", 0: "offensive"}
                          ).load(spec, splits)
    assert info["labels"]["class_to_model_output"] == [1, 2, 0] and info["labels"]["matched_by"] == "label_map"
    _, _, info = HubModel(name=str(models["nli"])).load(spec, splits)
    assert info["labels"]["class_to_model_output"] == [0, 1, 2] and "assumed" in info["labels"]["matched_by"]


def test_model_label_and_tokenizer_mismatches_are_one_line_errors(models, tmp_path):
    spec = task_spec(models["hx"], {"path": str(HUB / "hatexplain")})
    with pytest.raises(XBenchError, match=r"fixture.yaml: field 'model.params.label_map' is needed: the model's "
                                          r"labels \(Offensive, hate speech, NORMAL\) do not match"):
        HubModel(name=str(models["hx"])).load(spec, Splits([], [], ["a", "b", "c"]))
    with pytest.raises(XBenchError, match=r"the model has 3 outputs .* for 2 dataset classes"):
        HubModel(name=str(models["hx"])).load(spec, Splits([], [], ["neg", "pos"]))
    # a tokenizer without [MASK] is an error only when the task replaces features with it
    from transformers import AutoTokenizer

    folder = tmp_path / "nomask"
    tiny_bert(folder, ["neg", "pos"])
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.mask_token = None
    tok.save_pretrained(str(folder))
    two = Splits([], [], ["neg", "pos"])
    with pytest.raises(XBenchError, match=r"field 'replacement': the tokenizer .* has no mask token"):
        HubModel(name=str(folder)).load(task_spec(folder, {"path": "x"}), two)
    model, tok, _ = HubModel(name=str(folder)).load(task_spec(folder, {"path": "x"}, replacement="pad"), two)
    assert tok.mask_token_id is None
    with pytest.raises(XBenchError, match=r"field 'max_length': 600 exceeds the model's limit of 512"):
        HubModel(name=str(folder)).load(task_spec(folder, {"path": "x"}, replacement="pad", max_length=600), two)


# -- end to end -------------------------------------------------------------------------------
def test_runner_end_to_end_on_fixture_tasks(models, tmp_path):
    hx = task_spec(models["hx"], {"path": str(HUB / "hatexplain")}, name="hatexplain-fixture")
    nli = task_spec(models["nli"], {"path": str(HUB / "esnli"), "recipe": "esnli"}, name="esnli-fixture",
                    perturb_segments=[1], model={"label_map": {"LABEL_0": "entailment", "LABEL_1": "neutral",
                                                               "LABEL_2": "contradiction"}})
    cfg = RunConfig([hx, nli], [("occlusion", {}), ("random", {})], [("comprehensiveness", {}), ("token_f1", {})],
                    n=None, seed=0)
    out = Runner(cfg, tmp_path / "run", progress=False, log=lambda m: None).run()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["tasks"]["hatexplain-fixture"]["model"]["labels"]["class_to_model_output"] == [1, 2, 0]
    scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert set(scores.explainer) == {"occlusion", "random"} and set(scores.metric) == {"comprehensiveness", "token_f1"}
    f1 = scores[(scores.task == "hatexplain-fixture") & (scores.metric == "token_f1")].set_index(["explainer", "example"])
    for ex in ("1002_twitter", "1005_gab"):  # normal posts: no rationale to agree with
        assert f1.loc[("occlusion", ex), "error"] == "no gold rationale"
    rows = f1.loc["occlusion"].loc[["1001_gab", "1004_twitter"]]
    vals = pd.to_numeric(rows["value"])
    # scored on correctly classified posts only (a random tiny model gets some wrong: skipped, not failed)
    assert (((vals >= 0) & (vals <= 1)) | rows["error"].str.startswith("skipped: misclassified")).all()
    comp = scores[scores.metric == "comprehensiveness"]
    assert (comp.error == "").all() and np.isfinite(pd.to_numeric(comp.value)).all()
    # e-SNLI with only the hypothesis perturbable: one attribution per hypothesis word
    with np.load(out / "explanations" / "esnli-fixture" / "occlusion.npz") as z:
        assert z["lengths"].tolist() == [7, 6, 7]  # "The church has cracks in the ceiling." ...
