"""What plausibility scores: correctly classified examples against their gold rationale (the split is
in the notes), rationales that cover every feature left out, expected-missing rationales skipped;
average precision and ERASER's AUPRC each equal to sklearn's functions as the official scorer calls
them; and a trained model that never saw the rationale."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from helpers import LINEAR_TASK, fixed_explanations, run_metric
from xbench.metrics.base import Metric
from xbench.metrics.plausibility import FULL_RATIONALE, MISCLASSIFIED, average_precision, eraser_auprc
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task

M = Metric.registry.get


@pytest.mark.parametrize("seed", range(25))
def test_average_precision_and_eraser_auprc_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    gold = (rng.random(n) < 0.3).astype(int)
    gold[rng.integers(n)] = 1
    scores = np.round(rng.normal(size=n), int(rng.integers(0, 2)))  # rounding makes ties
    assert average_precision(gold, scores) == pytest.approx(average_precision_score(gold, scores), abs=1e-12)
    precision, recall, _ = precision_recall_curve(gold, scores)  # rationale_benchmark/metrics.py's _auprc
    assert eraser_auprc(gold, scores) == pytest.approx(auc(recall, precision), abs=1e-12)


def test_the_two_can_order_explainers_differently():
    gold = np.array([1, 0, 0, 1, 0, 0, 0, 1])
    a = np.array([0.5, 0.7, 0.2, 0.4, 0.1, 0.7, 0.1, 0.4])
    b = np.array([0.9, 0.5, 0.9, 0.8, 0.9, 0.1, 0.1, 0.1])  # ties: the interpolation differs most
    ap, au = (average_precision(gold, a), average_precision(gold, b)), (eraser_auprc(gold, a), eraser_auprc(gold, b))
    assert (ap[0] - ap[1]) * (au[0] - au[1]) < 0


def misclassifying_task():
    """bias −2.5 on the class-1 logit: 'a', 'b', 'd' (gold 1, logit 2 − 2.5) are predicted 0."""
    return load_task(parse_task({**LINEAR_TASK, "model": {"source": "test-linear", "params": {"bias": -2.5}}}, "m.yaml"))


def test_plausibility_scores_correctly_classified_examples_and_splits_the_rest():
    task = misclassifying_task()
    attrs = [np.arange(ex.n_features, 0, -1.0) for ex in task.examples]
    m = M("token_f1")()
    values, errors, _ = run_metric(task, m, targets=[0] * 4, expl=fixed_explanations(task, attrs))
    assert errors == [MISCLASSIFIED, MISCLASSIFIED, None, MISCLASSIFIED] and np.isfinite(values[2])
    assert m.notes["n_correct"] == 1 and m.notes["n_misclassified"] == 3 and m.notes["scored_on"] == "correct"
    # the split is computed, not only counted: top-|G| by position against G, by hand: 'a' (great fine |
    # the bad, G = great fine) 1.0, 'b' (the | film great plot, G = great) 0.0, 'd' (fine film | ..., G =
    # fine great) 0.5
    assert m.notes["mean_misclassified"] == pytest.approx(np.mean([1.0, 0.0, 0.5]))
    m_all = M("token_f1")(examples="all")
    values_all, errors_all, _ = run_metric(task, m_all, targets=[0] * 4, expl=fixed_explanations(task, attrs))
    assert errors_all == [None] * 4 and values_all[2] == values[2]
    assert m_all.notes["mean_misclassified"] == m.notes["mean_misclassified"]


def test_a_rationale_covering_every_feature_is_left_out_and_counted(tmp_path):
    import json

    import yaml

    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "great fine", "label": 1, "rationale": [1, 1]},
        {"text": "great the plot", "label": 1, "rationale": [1, 0, 0]}]))
    spec = {**LINEAR_TASK, "dataset": {"source": "path", "params": {"test": "d.jsonl", "text": "text", "label": "label",
                                                                   "label_names": ["neg", "pos"], "rationale": "rationale"}}}
    task = load_task(parse_task(spec, str(tmp_path / "t.yaml")))
    m = M("auprc")()
    from xbench.explainers.base import Explainer

    values, errors, _ = run_metric(task, m, Explainer.registry.get("random")())
    assert errors[0] == FULL_RATIONALE and np.isnan(values[0]) and errors[1] is None
    assert m.notes["n_full_rationale"] == 1


def test_expected_missing_rationales_are_skipped_not_failures(tmp_path, capsys):
    import json

    import yaml

    from xbench.cli import main
    from xbench.results.leaderboard import load_leaderboard

    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "great fine", "label": 1, "rationale": [1, 0]},
        {"text": "bad the plot", "label": 0, "rationale": [0, 0, 0]}]))  # non-toxic: no evidence, by design
    task = {**LINEAR_TASK, "missing_rationale": "skip", "dataset": {"source": "path", "params": {
        "test": "d.jsonl", "text": "text", "label": "label", "label_names": ["neg", "pos"], "rationale": "rationale"}}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(task))
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--no-progress", "--explainers", "occlusion",
                 "--metrics", "token_f1,comprehensiveness"]) == 0
    lb = load_leaderboard(tmp_path / "r").set_index("metric")
    assert lb.loc["token_f1", "n_skipped"] == 1 and lb.loc["token_f1", "n_failed"] == 0 and lb.loc["token_f1", "n"] == 1
    del task["missing_rationale"]  # by default, a failure (exit 2), as before
    path.write_text(yaml.safe_dump(task))
    assert main(["run", str(path), "--out", str(tmp_path / "r2"), "--no-progress", "--explainers", "occlusion",
                 "--metrics", "token_f1"]) == 2
    assert "empty gold rationale" in capsys.readouterr().err


def test_training_never_sees_the_gold_rationale():
    """Two training sets that differ only in their rationales train the same weights."""
    from xbench.data.base import Record, Splits
    from xbench.models.bert import TrainBert
    from xbench.tasks.task import weights_hash

    words = [("great fine the film", 1), ("bad the plot", 0), ("fine great plot", 1), ("the bad film", 0)] * 4
    spec = parse_task({**LINEAR_TASK, "name": "leak", "model": {"source": "train-bert", "params": {
        "epochs": 1, "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 16, "mask_prob": 0.5}}},
        "leak.yaml")

    def train(rationale_of):
        recs = [Record(f"r{i}", w.split(), y, rationale_of(w.split())) for i, (w, y) in enumerate(words)]
        model, _, _ = TrainBert(**spec.model.params).load(spec, Splits(recs, recs, ["neg", "pos"]))
        return weights_hash(model)

    a = train(lambda ws: [int(w in ("great", "bad")) for w in ws])
    b = train(lambda ws: [int(w == "the") for w in ws])
    assert a == b
