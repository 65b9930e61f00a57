"""ERASER import (``eraser`` source) and results export (``xbench export-eraser``).

The fixture ``tests/fixtures/eraser-mini`` is a tiny ERASER-format folder (see its
make_fixture.py); tests on the real Movie Reviews folder skip when it is absent.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from xbench.cli import main
from helpers import shared_data
from xbench.data.eraser import Eraser
from xbench.report.eraser import AOPC_BINS, export_eraser, word_scores, write_scorer_data
from xbench.core.errors import XBenchError
from xbench.models.bert import build_word_tokenizer
from xbench.run.config import RunConfig
from xbench.run.runner import Runner
from xbench.tasks.catalogue import load_task_file, parse_task
from xbench.tasks.task import load_task
from xbench.features.text import encode_records

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "eraser-mini"
REPO = Path(__file__).resolve().parents[2]


def real_movies() -> Path | None:
    return shared_data("eraser-movies")


def scorer_tokens(folder: Path, docid: str) -> list[str]:
    """A document's tokens the way ERASER's scorer reads them: non-empty stripped lines split on ' '."""
    lines = [ln.strip() for ln in (folder / "docs" / docid).read_text().split("\n")]
    return [t for ln in lines if ln for t in ln.split(" ") if t]


MINI = {
    "name": "eraser-mini", "granularity": "words", "rationale": True, "max_length": 48,
    "dataset": {"source": "eraser", "params": {"path": str(FIXTURE)}},
    "model": {"source": "train-bert", "params": {"hidden_size": 16, "num_layers": 1, "num_heads": 2,
                                                 "intermediate_size": 32, "epochs": 10, "batch_size": 8,
                                                 "lr": 0.005}},  # learns the fixture: test accuracy 1.0
}


# -- import --------------------------------------------------------------------------------------
def test_fixture_records_are_documents_with_union_rationales():
    splits = Eraser(path=str(FIXTURE)).load(seed=0)
    assert (len(splits.train), len(splits.test)) == (48, 8)
    assert splits.label_names == ["NEG", "POS"]
    anns = {json.loads(line)["annotation_id"]: json.loads(line) for line in open(FIXTURE / "test.jsonl")}
    for r in splits.test:
        ann = anns[r.id]
        assert r.meta == {"annotation_id": r.id, "docid": r.id, "n_tokens": len(r.words)}
        assert r.words == scorer_tokens(FIXTURE, r.id)
        assert r.label == splits.label_names.index(ann["classification"])
        gold = {t for g in ann["evidences"] for ev in g for t in range(ev["start_token"], ev["end_token"])}
        assert [i for i, v in enumerate(r.rationale) if v] == sorted(gold)
        for g in ann["evidences"]:
            for ev in g:
                assert " ".join(r.words[ev["start_token"]:ev["end_token"]]) == ev["text"]
    # hand-checked: test_000 has two evidence groups, "a boring film" at 7..10 and "a awful film" at 28..31
    r0 = next(r for r in splits.test if r.id == "test_000.txt")
    assert [i for i, v in enumerate(r0.rationale) if v] == [7, 8, 9, 28, 29, 30]
    assert r0.words[7:10] == ["a", "boring", "film"]


def test_shuffle_is_seeded_and_limits_apply():
    a = Eraser(path=str(FIXTURE), n_train=10, n_test=4, test_split="val").load(seed=0)
    b = Eraser(path=str(FIXTURE), n_train=10, n_test=4, test_split="val").load(seed=0)
    c = Eraser(path=str(FIXTURE), n_train=10, n_test=4, test_split="val").load(seed=1)
    assert [r.id for r in a.train] == [r.id for r in b.train] != [r.id for r in c.train]
    assert (len(a.train), len(a.test)) == (10, 4) and all(r.id.startswith("val_") for r in a.test)
    assert {r.label for r in a.train} == {0, 1}  # the files alternate, but a prefix of a sorted file would not
    plain = Eraser(path=str(FIXTURE), shuffle=False, n_test=3).load(seed=0)
    assert [r.id for r in plain.test] == ["test_000.txt", "test_001.txt", "test_002.txt"]
    none = Eraser(path=str(FIXTURE), rationale="none", label_names=["POS", "NEG"]).load(seed=0)
    assert none.test[0].rationale is None and none.label_names == ["POS", "NEG"]
    assert none.test[0].label == (0 if json.loads(
        next(ln for ln in open(FIXTURE / "test.jsonl") if none.test[0].id in ln))["classification"] == "POS" else 1)


def test_max_words_cuts_documents_and_drops_test_annotations_without_evidence():
    anns = [json.loads(line) for line in open(FIXTURE / "test.jsonl")]
    early = {a["annotation_id"] for a in anns if any(ev["start_token"] < 6 for g in a["evidences"] for ev in g)}
    assert 0 < len(early) < len(anns)
    s = Eraser(path=str(FIXTURE), max_words=6, drop_empty_rationale=True).load(0)
    assert {r.id for r in s.test} == early and s.info["dropped_empty_rationale"] == len(anns) - len(early)
    assert len(s.train) == 48  # the training split keeps every annotation
    full = {r.id: r for r in Eraser(path=str(FIXTURE)).load(0).test}
    for r in s.test + s.train:
        assert len(r.words) <= 6 and r.meta["n_tokens"] >= len(r.words)
    for r in s.test:
        assert r.words == full[r.id].words[:6] and r.rationale == full[r.id].rationale[:6]
        assert r.meta["n_tokens"] == len(full[r.id].words)
    kept = Eraser(path=str(FIXTURE), max_words=6).load(0)  # drop_empty_rationale off: all kept
    assert len(kept.test) == 8 and kept.info["dropped_empty_rationale"] == 0
    # sizes for `xbench list tasks`, from line counts
    assert Eraser(path=str(FIXTURE)).size() == "48/8"
    assert Eraser(path=str(FIXTURE), n_train=5, drop_empty_rationale=True).size() == "5/≤8"
    assert Eraser(path="no-such-eraser-folder").size() == "?"


def _folder(tmp_path: Path, rows: list[dict], docs: dict[str, str]) -> Path:
    (tmp_path / "docs").mkdir()
    for d, text in docs.items():
        (tmp_path / "docs" / d).write_text(text)
    body = "".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows)
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text(body)
    return tmp_path


def ev(docid: str, s: int, e: int) -> dict:
    return {"docid": docid, "start_token": s, "end_token": e}


@pytest.mark.parametrize("rows, message", [
    (["{not json\n"], "train.jsonl:1: malformed JSON"),
    ([{"annotation_id": "d", "evidences": []}], "train.jsonl:1: annotation has no field 'classification'"),
    ([{"annotation_id": "d", "classification": "POS", "evidences": [[ev("d", 2, 9)]]}],
     "train.jsonl:1: annotation d: evidence span [2, 9) is not within document d (4 tokens)"),
    ([{"annotation_id": "d", "classification": "POS", "evidences": [[ev("d", 0, 1), ev("e", 0, 1)]]}],
     "train.jsonl:1: annotation d refers to 2 documents"),
    ([{"annotation_id": "x", "classification": "POS", "evidences": []}], "document"),
])
def test_bad_files_name_file_and_line(tmp_path, rows, message):
    folder = _folder(tmp_path, rows, {"d": "a good\nfilm .\n", "e": "x\n"})
    with pytest.raises(XBenchError) as e:
        Eraser(path=str(folder)).load(0)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("params, message", [
    ({"rationale": "first"}, "'dataset.params.rationale' must be one of union, none"),
    ({"label_names": "NEG"}, "'dataset.params.label_names' must be a list"),
    ({"max_words": 0}, "'dataset.params.max_words' must be a positive integer"),
    ({"label_names": ["neg", "pos"]}, "classification 'NEG' is not in label_names"),
    ({"n_test": "5"}, "'dataset.params.n_test' must be a positive integer; got '5'"),
    ({"n_train": 0}, "'dataset.params.n_train' must be a positive integer; got 0"),
])
def test_bad_params(params, message):
    with pytest.raises(XBenchError, match=message):
        Eraser(path=str(FIXTURE), **params).load(0)


def test_missing_folder_is_one_line_needs_data(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = Eraser(path="no-such-eraser-folder")
    assert src.unavailable().startswith("needs data: no-such-eraser-folder not found")
    assert Eraser(path=str(FIXTURE)).unavailable() is None
    # the shipped task with its folder absent: one line at the CLI, exit code 2
    text = (REPO / "tasks" / "eraser-movies.yaml").read_text()
    text = text.replace("path: eraser-movies", "path: no-such-eraser-folder")
    task = tmp_path / "movies.yaml"
    task.write_text(text)
    with pytest.raises(XBenchError, match="needs data"):
        load_task(load_task_file(task), 1)
    assert main(["run", str(task), "--n", "1", "--explainers", "random", "--metrics", "comprehensiveness",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs data" in err and len(err.splitlines()) == 1


def test_truncation_cuts_the_rationale_where_it_cuts_the_input():
    splits = Eraser(path=str(FIXTURE), shuffle=False).load(0)
    spec = parse_task(MINI, "mini.yaml")
    tok = build_word_tokenizer([w for r in splits.train + splits.test for w in r.words], 48)
    long = splits.test[-1]
    assert len(long.words) == 68 and any(long.rationale[46:])  # evidence after the cut
    ex = encode_records([long], tok, spec)[0]
    assert ex.truncated and ex.n_features == 46  # 48 minus [CLS], [SEP]
    assert ex.rationale.tolist() == long.rationale[:46]
    assert ex.word_index.tolist() == list(range(46))
    assert ex.meta["n_tokens"] == 68


@pytest.mark.skipif(real_movies() is None, reason="needs ../shared/data/eraser-movies (ERASER Movie Reviews)")
def test_real_movie_reviews():
    folder = real_movies()
    splits = Eraser(path="eraser-movies").load(0)
    assert (len(splits.train), len(splits.test)) == (1600, 199)
    assert len(Eraser(path="eraser-movies", test_split="val").load(0).test) == 200
    assert splits.label_names == ["NEG", "POS"]
    assert splits.info["evidence_text_mismatches"] == 0
    # the test split's rationales are comprehensive: 31.4% of tokens (train: 9.3%)
    assert splits.info["mean_rationale_fraction_test"] == pytest.approx(0.3139, abs=1e-4)
    assert splits.info["mean_rationale_fraction_train"] == pytest.approx(0.0934, abs=1e-4)
    cut = Eraser(path="eraser-movies", max_words=254, drop_empty_rationale=True).load(0)  # the task's view
    assert (len(cut.test), cut.info["dropped_empty_rationale"]) == (181, 18)
    recs = splits.test[:12]
    for r in recs:
        assert r.words == scorer_tokens(folder, r.meta["docid"])
    spec = parse_task({**MINI, "max_length": 256}, "m.yaml")
    tok = build_word_tokenizer([w for r in recs for w in r.words], 256)
    exs = encode_records(recs, tok, spec)
    assert sum(ex.truncated for ex in exs) == sum(len(r.words) > 254 for r in recs) > 0
    for r, ex in zip(recs, exs):
        assert ex.word_index.tolist() == list(range(min(254, len(r.words))))
        assert ex.rationale.tolist() == r.rationale[:ex.n_features]


def test_task_file_parses():
    spec = load_task_file(REPO / "tasks" / "eraser-movies.yaml")
    assert spec.dataset.source == "eraser" and spec.rationale and spec.granularity == "words"


# -- export --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mini_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eraser-run")
    spec = parse_task(MINI, str(out / "eraser-mini.yaml"))
    cfg = RunConfig([spec], [("saliency", {}), ("random", {})],
                    [("comprehensiveness", {}), ("sufficiency", {})], n=None, seed=0)
    Runner(cfg, out, progress=False).run()
    return out


def check_scorer_schema(lines: list[dict], folder: Path, split: str, labels: list[str]) -> None:
    """What the official scorer's verify_instances and scoring read, checked independently."""
    anns = [json.loads(x) for x in open(folder / f"{split}.jsonl")]
    assert sorted(x["annotation_id"] for x in lines) == sorted(a["annotation_id"] for a in anns)
    for x in lines:
        assert isinstance(x["annotation_id"], str) and isinstance(x["rationales"], list)
        assert len(x["rationales"]) == 1
        rat = x["rationales"][0]
        n = len(scorer_tokens(folder, rat["docid"]))
        soft = rat["soft_rationale_predictions"]
        assert len(soft) == n and all(isinstance(s, float) and math.isfinite(s) for s in soft)
        hard = rat["hard_rationale_predictions"]
        assert hard
        prev_end = -1
        for h in hard:
            assert set(h) == {"start_token", "end_token"}
            assert all(isinstance(v, int) for v in h.values())
            assert prev_end < h["start_token"] < h["end_token"] <= n  # sorted, disjoint, not adjacent
            prev_end = h["end_token"]
        assert isinstance(x["classification"], str) and x["classification"] in labels
        keys = ["classification_scores", "comprehensiveness_classification_scores",
                "sufficiency_classification_scores"]
        dists = [x[k] for k in keys] + [t[k] for t in x["thresholded_scores"] for k in keys[1:]]
        for d in dists:
            assert isinstance(d, dict) and sorted(d) == sorted(labels)
            assert sum(d.values()) == pytest.approx(1.0, abs=1e-5)
        assert [t["threshold"] for t in x["thresholded_scores"]] == list(AOPC_BINS)
        assert x["classification"] == max(x["classification_scores"], key=x["classification_scores"].get)


def test_export_matches_scorer_schema_and_run_metrics(mini_run, tmp_path):
    lines, summary = export_eraser(mini_run, explainer="saliency")
    assert summary["k_fraction"] == 0.1 and summary["n"] == 8
    check_scorer_schema(lines, FIXTURE, "test", ["NEG", "POS"])
    task = load_task(parse_task(MINI, "m.yaml"))
    att = dict(zip(*(lambda z: (list(z["ids"]), np.split(z["flat"], np.cumsum(z["lengths"])[:-1])))(
        np.load(mini_run / "explanations" / "eraser-mini" / "saliency.npz"))))
    for x, ex in zip(lines, task.examples):
        assert x["annotation_id"] == ex.id
        rat = x["rationales"][0]
        F = ex.n_features
        soft = np.array(rat["soft_rationale_predictions"])
        np.testing.assert_allclose(soft[:F], att[ex.id])  # words granularity: one feature per word
        assert not soft[F:].any()  # tokens cut by truncation score 0
        chosen = [t for h in rat["hard_rationale_predictions"] for t in range(h["start_token"], h["end_token"])]
        assert len(chosen) == math.ceil(0.1 * F) and max(chosen) < F
        assert set(chosen) == set(np.argsort(-att[ex.id], kind="stable")[:len(chosen)].tolist())
    # comprehensiveness by hand for one example: the chosen words become [MASK], the rest unchanged
    ex, x = task.examples[0], lines[0]
    words = Eraser(path=str(FIXTURE)).load(0).test[0].words
    hard = {t for h in x["rationales"][0]["hard_rationale_predictions"]
            for t in range(h["start_token"], h["end_token"])}
    tok, model = task.model.tokenizer, task.model.model
    for name, keep in (("comprehensiveness", lambda t: t not in hard), ("sufficiency", lambda t: t in hard)):
        masked = [w if keep(t) else "[MASK]" for t, w in enumerate(words)]
        enc = tok(masked, is_split_into_words=True, truncation=True, max_length=48, return_tensors="pt")
        with torch.no_grad():
            p = torch.softmax(model(**enc).logits, -1)[0].numpy()
        got = x[f"{name}_classification_scores"]
        np.testing.assert_allclose([got["NEG"], got["POS"]], p, atol=1e-5)
    # the scorer's AOPCs over the default bins equal xbench's comprehensiveness/sufficiency means
    scores = pd.read_csv(mini_run / "scores.csv")
    for metric, key in (("comprehensiveness", "comprehensiveness_classification_scores"),
                        ("sufficiency", "sufficiency_classification_scores")):
        aopc = np.mean([[x["classification_scores"][x["classification"]] - t[key][x["classification"]]
                         for t in x["thresholded_scores"]] for x in lines])
        mine = scores[(scores.explainer == "saliency") & (scores.metric == metric)].value.mean()
        assert aopc == pytest.approx(mine, abs=1e-5)


def test_export_k_from_gold(mini_run):
    lines, summary = export_eraser(mini_run, explainer="random", k_fraction="gold", aopc_bins=())
    task = load_task(parse_task(MINI, "m.yaml"))
    frac = np.mean([ex.rationale.sum() / ex.n_features for ex in task.examples])
    assert summary["k_fraction"] == pytest.approx(frac)
    for x, ex in zip(lines, task.examples):
        n = sum(h["end_token"] - h["start_token"] for h in x["rationales"][0]["hard_rationale_predictions"])
        assert n == min(ex.n_features, max(1, math.ceil(frac * ex.n_features - 1e-9)))
        assert x["thresholded_scores"] == []


def test_export_cli(mini_run, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    assert main(["export-eraser", str(mini_run), "--explainer", "saliency", "--out", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    check_scorer_schema(lines, FIXTURE, "test", ["NEG", "POS"])
    assert "wrote 8 ERASER results lines" in capsys.readouterr().out
    assert main(["export-eraser", str(mini_run), "--out", str(out)]) == 2  # two explainers: choose one
    err = capsys.readouterr().err.strip()
    assert "choose one with --explainer" in err and len(err.splitlines()) == 1
    assert main(["export-eraser", str(tmp_path), "--out", str(out)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    # a folder for scoring part of a split: just those annotations, the documents linked
    folder, split = write_scorer_data(parse_task(MINI, "m.yaml"), ["test_003.txt", "test_001.txt"], tmp_path / "sd")
    assert split == "test"
    wanted = [ln for ln in (FIXTURE / "test.jsonl").read_text().splitlines(True)
              if json.loads(ln)["annotation_id"] in ("test_001.txt", "test_003.txt")]
    assert (folder / "test.jsonl").read_text() == "".join(wanted) and len(wanted) == 2
    assert (folder / "docs" / "test_001.txt").read_text() == (FIXTURE / "docs" / "test_001.txt").read_text()


def test_word_scores_pool_subword_features():
    class Ex:  # three features: word 0 split in two pieces, word 2; word 1 and 3 unseen
        word_index = np.array([0, 0, 2])

    a = np.array([1.0, 3.0, -2.0])
    assert word_scores(Ex, a, 4, "sum").tolist() == [4.0, 0.0, -2.0, 0.0]
    assert word_scores(Ex, a, 4, "mean").tolist() == [2.0, 0.0, -2.0, 0.0]
    assert word_scores(Ex, a, 4, "max").tolist() == [3.0, 0.0, -2.0, 0.0]


def test_documents_split_into_lines_as_the_official_scorer_does(tmp_path):
    """rationale_benchmark.utils.load_documents reads ``readlines()`` in text mode: lines end at \\n (or
    \\r\\n, \\r) only. Written out by hand for a document holding the other characters str.splitlines
    splits on (\\u2028, \\x85, \\x0c): they stay inside tokens, so token indices match the scorer's."""
    from xbench.data.eraser import read_document

    doc = tmp_path / "doc"
    doc.write_text("a b\u2028c d\x85e\x0cf\n\ng  h\r\ni\n", encoding="utf-8", newline="")
    assert read_document(doc) == ["a", "b\u2028c", "d\x85e\x0cf", "g", "h", "i"]
