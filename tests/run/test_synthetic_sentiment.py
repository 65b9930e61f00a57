"""The offline default task: data with known ground truth, a locally trained BERT, and the
acceptance checks (plausibility as a correctness test, determinism)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xbench.data.synthetic import NEGATIVE, NEUTRAL, POSITIVE, SyntheticSentiment
from xbench.results.leaderboard import read_scores
from xbench.run.config import RunConfig
from xbench.run.runner import Runner
from xbench.tasks.task import weights_hash
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task
from xbench.tasks.catalogue import resolve_task

pytestmark = pytest.mark.slow  # the whole pipeline, more than once


def test_generator_plants_a_majority_of_one():
    splits = SyntheticSentiment(n_train=300, n_test=300).load(seed=1)
    for r in splits.train + splits.test:
        major, minor = (POSITIVE, NEGATIVE) if r.label == 1 else (NEGATIVE, POSITIVE)
        gold = [w for w, g in zip(r.words, r.rationale) if g]
        rest = [w for w, g in zip(r.words, r.rationale) if not g]
        assert gold and all(w in major for w in gold)
        assert sum(w in minor for w in rest) == len(gold) - 1
        assert all(w in NEUTRAL or w in minor for w in rest)
    # filler words are independent of the label: same distribution in both classes
    fill = {c: np.mean([sum(w in NEUTRAL for w in r.words) for r in splits.train if r.label == c]) for c in (0, 1)}
    assert abs(fill[0] - fill[1]) < 1.0
    again = SyntheticSentiment(n_train=300, n_test=300).load(seed=1)
    assert [r.words for r in again.test] == [r.words for r in splits.test]


def test_training_is_deterministic_and_cached(tmp_path, monkeypatch):
    spec = parse_task({
        "name": "tiny", "rationale": True, "max_length": 32,
        "dataset": {"source": "synthetic-sentiment", "params": {"n_train": 256, "n_test": 64}},
        "model": {"source": "train-bert", "params": {"hidden_size": 16, "num_layers": 1, "num_heads": 2,
                                                     "intermediate_size": 32, "epochs": 1}},
    }, "tiny.yaml")
    hashes = []
    for sub in ("a", "b"):
        monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / sub))
        hashes.append(weights_hash(load_task(spec, 8).model.model))
    assert hashes[0] == hashes[1]
    assert list((tmp_path / "a" / "models").iterdir())[0].joinpath("model.safetensors").exists()
    t = load_task(spec, 8)  # from cache
    assert weights_hash(t.model.model) == hashes[0]


EXPLAINERS = [("random", {}), ("occlusion", {}), ("integrated_gradients", {"n_steps": 16}), ("saliency", {})]
METRICS = [("comprehensiveness", {}), ("sufficiency", {}), ("token_f1", {}), ("iou_f1", {}), ("auprc", {}),
           ("forward_passes", {})]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    spec = resolve_task("synthetic-sentiment")
    out = tmp_path_factory.mktemp("run")
    runner = Runner(RunConfig([spec], EXPLAINERS, METRICS, n=100, seed=0), out, progress=False)
    runner.run()
    return out, spec


def test_model_is_accurate(synthetic_run):
    import json

    info = json.loads((synthetic_run[0] / "manifest.json").read_text())["tasks"]["synthetic-sentiment"]
    assert info["model"]["test_accuracy"] >= 0.97
    assert info["accuracy_on_slice"] >= 0.97
    assert info["engine"]["unique"] < info["engine"]["requested"]


def test_plausibility_is_a_correctness_check(synthetic_run):
    lb = pd.read_json(synthetic_run[0] / "leaderboard.json")
    n_expl = len(EXPLAINERS)
    for metric in ("token_f1", "iou_f1", "auprc"):
        m = lb[lb.metric == metric].set_index("explainer")
        assert m.loc["random", "rank"] == n_expl, metric  # random ranks last
    f1 = lb[lb.metric == "token_f1"].set_index("explainer")
    for name in ("occlusion", "integrated_gradients"):
        assert f1.loc[name, "mean"] >= 0.8
        assert f1.loc[name, "ci_low"] > f1.loc["random", "ci_high"]  # CIs do not overlap
    comp = lb[lb.metric == "comprehensiveness"].set_index("explainer")
    assert comp.loc["random", "rank"] == n_expl


def test_same_config_gives_identical_scores(synthetic_run, tmp_path):
    # two fresh runs (attributions recomputed) of the smallest config that still has every explainer's
    # randomness, ties and the engine's de-duplication in play: bit-identical scores and tables
    _, spec = synthetic_run
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        Runner(RunConfig([spec], EXPLAINERS, METRICS, n=8, seed=0, cache=False), out, progress=False).run()
    a, b = (read_scores(o / "scores.csv") for o in outs)
    pd.testing.assert_frame_equal(a, b)
    for f in ("leaderboard.json", "leaderboard.md"):
        assert (outs[0] / f).read_text() == (outs[1] / f).read_text()


def test_run_directory_layout(synthetic_run):
    import json

    out = synthetic_run[0]
    for f in ("manifest.json", "scores.csv", "leaderboard.json", "leaderboard.md", "leaderboard.csv"):
        assert (out / f).exists(), f
    for name, _ in EXPLAINERS:
        assert (out / "scores" / "synthetic-sentiment" / f"{name}.csv").exists()
        assert (out / "explanations" / "synthetic-sentiment" / f"{name}.npz").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and m["versions"]["torch"] and m["config"]["seed"] == 0
    conv = m["tasks"]["synthetic-sentiment"]["explainers"]["integrated_gradients"]["conventions"]
    assert conv["embedding_reduction"] == "sum" and conv["replacement"] == "mask"
    assert not list(Path(out).rglob("*.tmp"))  # atomic writes leave no temp files


def test_a_work_unit_runs_alone_from_its_serialised_form(synthetic_run, tmp_path):
    import json

    from xbench.run.config import WorkUnit

    out1, spec = synthetic_run
    cfg = RunConfig([spec], EXPLAINERS, METRICS, n=10, seed=0)  # the first 10 of the run's 100 examples
    unit = next(u for u in cfg.units() if u.explainer == "integrated_gradients")
    wire = json.loads(json.dumps(unit.to_dict()))
    alone = Runner(cfg, tmp_path, progress=False).run_units([WorkUnit.from_dict(wire)], {})
    full = read_scores(out1 / "scores.csv")
    first = set(alone["example"])
    full = full[(full.explainer == "integrated_gradients") & full.example.isin(first)].reset_index(drop=True)
    alone = alone.reset_index(drop=True)
    pd.testing.assert_frame_equal(full[["metric", "example", "value"]], alone[["metric", "example", "value"]],
                                  check_dtype=False)
