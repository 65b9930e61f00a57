"""Tabular tasks: breast cancer and the synthetic linear generator, the tabular model sources, and
the ground-truth metrics (hand-computed values on the linear model of helpers_dense)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import run_metric
from helpers_dense import TAB_TASK, W_TAB
from xbench.data.base import DatasetSource
from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer, Explanations
from xbench.metrics.base import Metric
from xbench.tasks.catalogue import load_task_file, parse_task, spec_from_dict
from xbench.tasks.task import load_task

ROOT = Path(__file__).resolve().parents[2]
#: a small synthetic-linear dataset: quick to generate and to explain
SYN = {"n_train": 400, "n_test": 120, "n_features": 10, "n_informative": 4, "correlation": 0.3,
       "label_noise": 0.0}


def syn_task(replacement: str = "mean", model: dict | None = None, **data):
    return parse_task({"name": "syn", "modality": "tabular", "replacement": replacement, "rationale": True,
                       "dataset": {"source": "synthetic-linear", "params": {**SYN, **data}},
                       "model": model or {"source": "linear-generator"}}, "syn.yaml")


def score(task, name: str, attrs: list, targets: list, **params):
    """Values and errors of metric ``name`` for fixed attributions."""
    expl = Explanations("fixed", {}, [ex.id for ex in task.examples], [np.asarray(a, float) for a in attrs],
                        np.zeros(len(attrs)), np.zeros(len(attrs), int), np.zeros(len(attrs), int))
    m = Metric.registry.get(name)(**params)
    vals, errs, _ = run_metric(task, m, targets=targets, expl=expl)
    return vals, errs, m


# --- data ---------------------------------------------------------------------------------------

def test_synthetic_linear_is_deterministic_and_follows_its_generator():
    src = DatasetSource.registry.get("synthetic-linear")(**SYN)
    a, b = src.load(0), src.load(0)
    xa = np.stack([r.x for r in a.train + a.test])
    np.testing.assert_array_equal(xa, np.stack([r.x for r in b.train + b.test]))
    assert a.info == b.info
    other = src.load(1)
    assert not np.array_equal(xa[:5], np.stack([r.x for r in other.train[:5]]))
    w, bias = np.array(a.info["truth_weights"]), a.info["truth_intercept"]
    assert np.count_nonzero(w) == 4 and a.info["informative"] == np.flatnonzero(w).tolist()
    assert np.all((np.abs(w[w != 0]) >= 0.5) & (np.abs(w[w != 0]) <= 2))
    # no label noise: the label is the sign of the generator's log-odds; gold mask = informative features
    y = np.array([r.label for r in a.test])
    np.testing.assert_array_equal(y, (np.stack([r.x for r in a.test]).astype(np.float64) @ w + bias > 0))
    assert all(np.array_equal(r.mask, (w != 0).astype(int)) for r in a.test)
    # correlation: the sample correlation of two columns is near the requested 0.3
    assert abs(np.corrcoef(xa[:, 0], xa[:, 1])[0, 1] - 0.3) < 0.1
    noisy = DatasetSource.registry.get("synthetic-linear")(**{**SYN, "label_noise": 0.2}).load(0)
    flipped = np.mean([r.meta["label_flipped"] for r in noisy.train])
    assert 0.15 < flipped < 0.25


@pytest.mark.parametrize("field,value", [("n_informative", 11), ("correlation", 1.0), ("label_noise", 0.5),
                                         ("n_features", 0)])
def test_synthetic_linear_rejects_bad_params_naming_the_field(field, value):
    src = DatasetSource.registry.get("synthetic-linear")(**{**SYN, field: value})
    src.task_path = "t.yaml"
    with pytest.raises(XBenchError, match=rf"t.yaml: field 'dataset.params.{field}'"):
        src.load(0)


def test_breast_cancer_is_standardised_with_train_statistics_only():
    from sklearn.datasets import load_breast_cancer

    src = DatasetSource.registry.get("breast-cancer")()
    s = src.load(0)
    raw = load_breast_cancer()
    assert s.info["feature_names"] == list(raw.feature_names) and s.label_names == ["malignant", "benign"]
    assert len(s.train) + len(s.test) == 569 and len(s.test) == 143
    tr_rows = [r.meta["row"] for r in s.train]
    te_rows = [r.meta["row"] for r in s.test]
    assert not set(tr_rows) & set(te_rows)
    mean, std = raw.data[tr_rows].mean(0), raw.data[tr_rows].std(0)
    xt = np.stack([r.x for r in s.test])
    np.testing.assert_allclose(xt, (raw.data[te_rows] - mean) / std, rtol=1e-5, atol=1e-5)
    xtr = np.stack([r.x for r in s.train])
    np.testing.assert_allclose(xtr.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(xtr.std(0), 1, atol=1e-4)
    # the test split is NOT standardised by its own statistics (no leakage), but by the train's
    assert np.abs(xt.mean(0)).max() > 0.05
    # stratified: both splits keep the class balance (212 malignant of 569)
    for part in (s.train, s.test):
        assert abs(np.mean([r.label == 0 for r in part]) - 212 / 569) < 0.01
    again = src.load(0)
    assert [r.id for r in again.test] == [r.id for r in s.test]
    assert [r.id for r in src.load(1).test] != [r.id for r in s.test]


def test_truth_follows_each_examples_baseline_mean_and_marginal():
    mean_task, marg_task = load_task(syn_task("mean"), 20), load_task(syn_task("marginal"), 20)
    splits = DatasetSource.registry.get("synthetic-linear")(**SYN).load(0)
    w = np.array(splits.info["truth_weights"])
    train_mean = np.stack([r.x for r in splits.train]).mean(0)
    for em, eg in zip(mean_task.examples, marg_task.examples):
        np.testing.assert_allclose(em.baseline, train_mean, rtol=1e-6)
        np.testing.assert_allclose(em.truth, w * (em.x - em.baseline), atol=1e-6)
        np.testing.assert_allclose(eg.truth, w * (eg.x - eg.baseline), atol=1e-6)
        assert not np.allclose(eg.baseline, em.baseline)
    # the record's own truth is the mean-policy value
    np.testing.assert_allclose(splits.test[0].truth, w * (splits.test[0].x - train_mean), atol=1e-5)


# --- models -------------------------------------------------------------------------------------

def test_linear_generator_is_the_generator():
    import torch

    task = load_task(syn_task(), 50)
    splits = DatasetSource.registry.get("synthetic-linear")(**SYN).load(0)
    w, b = np.array(splits.info["truth_weights"]), splits.info["truth_intercept"]
    x = np.stack([ex.x for ex in task.examples])
    with torch.no_grad():
        logits = task.model.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], x @ w + b, atol=1e-5)
    assert task.info["model"]["generator"]["weight_cosine_with_generator"] == pytest.approx(1.0)
    with pytest.raises(XBenchError, match="linear-generator needs a binary dataset with a known linear generator"):
        load_task(parse_task({**TAB_TASK, "model": {"source": "linear-generator"}}, "t.yaml"))


@pytest.mark.parametrize("path,floor", [("breast-cancer-logreg", 0.95), ("breast-cancer-mlp", 0.95),
                                        ("synthetic-linear-logreg", 0.9)])
def test_trained_models_reach_their_accuracy(path, floor):
    task = load_task(load_task_file(ROOT / "tasks" / f"{path}.yaml"), 5)
    info = task.info["model"]
    assert info["test_accuracy"] >= floor
    if path == "synthetic-linear-logreg":  # the trained weights point along the generator's
        assert info["generator"]["weight_cosine_with_generator"] > 0.99
    again = load_task(load_task_file(ROOT / "tasks" / f"{path}.yaml"), 5)
    assert again.info["model"]["cache"] == "hit" and again.info["model"]["test_accuracy"] == info["test_accuracy"]


def test_trained_logreg_attributions_are_exact():
    """On a trained logistic regression the class-c logit's attribution is W_c (x − b) exactly."""
    task = load_task(load_task_file(ROOT / "tasks" / "breast-cancer-logreg.yaml"), 4)
    W = task.model.model.weight.detach().numpy().astype(np.float64)
    targets = [0, 1, 0, 1]
    for name, params in (("occlusion", {}), ("integrated_gradients", {}), ("kernel_shap", {"n_samples": 120})):
        out = Explainer.registry.get(name)(**params).explain(task, task.examples, targets)
        for ex, t, a in zip(task.examples, targets, out.attributions):
            # KernelSHAP's least-squares fit in float32 over 30 features: exact up to ~1e-3
            np.testing.assert_allclose(a, W[t] * (ex.x - ex.baseline), atol=1e-3 if name == "kernel_shap" else 2e-5,
                                       err_msg=name)


# --- ground-truth metrics: hand-computed ----------------------------------------------------------

def lin_task():
    """helpers_dense: truth t = W_TAB (x − mean) = (4, −1, 1), (−2, 0, −3), (0, −1, 0)."""
    return load_task(parse_task(dict(TAB_TASK), "tab.yaml"))


def test_truth_of_the_helper_task():
    task = lin_task()
    np.testing.assert_allclose([ex.truth for ex in task.examples], [[4, -1, 1], [-2, 0, -3], [0, -1, 0]])
    np.testing.assert_allclose(task.examples[0].truth, W_TAB * (task.examples[0].x - task.examples[0].baseline))


def test_topk_agreements_by_hand():
    """Example 0: t = (4, −1, 1) → |t| order 0, 1, 2 (1 and 2 tie: by index). a = (3, −0.5, 2) → |a|
    order 0, 2, 1. k = 2: T = {0, 1}, E = {0, 2}: FA = 1/2; ranks agree at r = 1 only: RA = 1/2;
    in both, feature 0 with sign + = +: SA = 1/2. k = 3: FA = 1, RA = 1/3 (feature 0), SA = 3/3."""
    task = lin_task()
    task.examples = task.examples[:1]
    a = [np.array([3.0, -0.5, 2.0])]
    want = {2: (0.5, 0.5, 0.5), 3: (1.0, 1 / 3, 1.0)}
    for k, (fa, ra, sa) in want.items():
        for name, v in (("gt_feature_agreement", fa), ("gt_rank_agreement", ra), ("gt_sign_agreement", sa)):
            assert score(task, name, a, [1], k=k)[0][0] == pytest.approx(v), (name, k)
    # explaining class 0 negates the truth: every sign now disagrees; the sets do not change
    assert score(task, "gt_sign_agreement", a, [0], k=3)[0][0] == 0.0
    assert score(task, "gt_feature_agreement", a, [0], k=2)[0][0] == 0.5


def test_default_k_is_the_truths_support():
    """Example 1: t = (−2, 0, −3): k = 2, T order 2, 0. a = (1, 5, 2): E order 1, 2.
    FA = |{1, 2} ∩ {2, 0}| / 2 = 1/2; RA: (1 vs 2, 2 vs 0) = 0."""
    task = lin_task()
    task.examples = task.examples[1:2]
    a = [np.array([1.0, 5.0, 2.0])]
    assert score(task, "gt_feature_agreement", a, [1])[0][0] == 0.5
    assert score(task, "gt_rank_agreement", a, [1])[0][0] == 0.0


def test_pearson_by_hand():
    """a = (3, −0.5, 2), t = (4, −1, 1): deviations (1.5, −2, 0.5) and (8/3, −7/3, −1/3):
    cov = 4 + 14/3 − 1/6 = 8.5; ρ = 8.5 / sqrt(6.5 · 114/9)."""
    task = lin_task()
    task.examples = task.examples[:1]
    a = [np.array([3.0, -0.5, 2.0])]
    rho = 8.5 / np.sqrt(6.5 * 114 / 9)
    assert score(task, "gt_pearson", a, [1])[0][0] == pytest.approx(rho, abs=1e-12)
    assert score(task, "gt_pearson", a, [0])[0][0] == pytest.approx(-rho, abs=1e-12)
    vals, errs, m = score(task, "gt_pearson", [np.zeros(3)], [1])
    assert vals[0] == 0.0 and errs[0] is None and m.notes["n_constant"] == 1


def test_pearson_equals_scipy():
    from scipy.stats import pearsonr

    from xbench.metrics.ground_truth import pearson

    rng = np.random.default_rng(0)
    for scale in (1e-30, 1.0, 1e30):
        for n in (2, 3, 10, 50):
            a, b = rng.normal(size=n) * scale, rng.normal(size=n) + 0.5 * rng.normal(size=n)
            assert pearson(a, b) == pytest.approx(pearsonr(a, b).statistic, abs=1e-12)
    assert pearson(np.array([1.0, 2, 3]), np.array([-2.0, -4, -6])) == -1.0


def test_missing_or_zero_truth_fails_with_a_reason_and_no_truth_means_not_applicable():
    task = lin_task()
    task.examples[0].truth = None
    task.examples[1].truth = np.zeros(3)
    a = [np.ones(3), np.ones(3), np.array([1.0, 2.0, 3.0])]
    for name in ("gt_feature_agreement", "gt_rank_agreement", "gt_sign_agreement", "gt_pearson"):
        vals, errs, _ = score(task, name, a, [1, 1, 1])
        assert "no true attribution" in errs[0] and "zero for every feature" in errs[1], name
        assert np.isnan(vals[:2]).all() and errs[2] is None and np.isfinite(vals[2])
    m = Metric.registry.get("gt_pearson")()
    assert m.applies_to(task, None) is True
    for ex in task.examples:
        ex.truth = None
    assert m.applies_to(task, None) is False
    assert Metric.registry.get("gt_pearson").family == "ground_truth"


# --- explainers against the truth on the generator ------------------------------------------------

def test_exact_explainers_score_one_and_random_its_expectation():
    """The generator is a logistic regression: occlusion, IG and KernelSHAP return its exact
    attribution ±½ w (x − b) on the explained logit, so every ground-truth metric is 1. Random
    U(0, 1) scores: E[FA] = k/F, E[RA] = 1/F, E[SA] = mean #{j ∈ T_k : t_j > 0} / F, E[ρ] = 0."""
    task = load_task(syn_task(), 60)
    x = np.stack([ex.x for ex in task.examples])
    targets = task.model.forward_array(x, "logit").argmax(1).tolist()  # the predicted classes: both occur
    assert 0 < sum(targets) < len(targets)
    names = ("gt_feature_agreement", "gt_rank_agreement", "gt_sign_agreement", "gt_pearson")
    for expl, params in (("occlusion", {}), ("integrated_gradients", {}), ("kernel_shap", {"n_samples": 32})):
        out = Explainer.registry.get(expl)(**params).explain(task, task.examples, targets)
        for ex, t, a in zip(task.examples, targets, out.attributions):
            np.testing.assert_allclose(a, (0.5 if t == 1 else -0.5) * ex.truth, atol=2e-4, err_msg=expl)
        for name in names:
            assert score(task, name, out.attributions, targets)[0] == pytest.approx(1.0, abs=1e-6), (expl, name)
    rnd = Explainer.registry.get("random")().explain(task, task.examples, targets)
    F, k = 10, 4
    t_c = [(1 if t else -1) * ex.truth for ex, t in zip(task.examples, targets)]  # truth of the explained class
    e_sa = np.mean([np.sum(tc[np.argsort(-np.abs(tc), kind="stable")[:k]] > 0) / F for tc in t_c])
    expected = {"gt_feature_agreement": k / F, "gt_rank_agreement": 1 / F, "gt_sign_agreement": e_sa,
                "gt_pearson": 0.0}
    for name, e in expected.items():  # about 4 standard errors of a mean over 60 examples
        tol = {"gt_feature_agreement": 0.1, "gt_rank_agreement": 0.08, "gt_sign_agreement": 0.1,
               "gt_pearson": 0.17}[name]
        assert score(task, name, rnd.attributions, targets)[0].mean() == pytest.approx(e, abs=tol), name


# --- end to end -----------------------------------------------------------------------------------

def test_runner_on_the_tabular_tasks_records_the_replacement(tmp_path):
    import pandas as pd

    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner

    specs = [load_task_file(ROOT / "tasks" / f"{n}.yaml") for n in ("breast-cancer-logreg", "breast-cancer-mlp",
                                                                      "synthetic-linear")]

    d = {**load_task_file(ROOT / "tasks" / "synthetic-linear.yaml").to_dict(), "name": "synthetic-linear-marginal",
         "replacement": "marginal"}
    specs.append(spec_from_dict(d, "marginal.yaml"))
    cfg = RunConfig(specs, [("occlusion", {}), ("saliency", {}), ("random", {})],
                    [("comprehensiveness", {}), ("token_f1", {}), ("gt_feature_agreement", {}),
                     ("gt_rank_agreement", {}), ("gt_pearson", {})], n=12, seed=0)
    out = Runner(cfg, tmp_path / "run", progress=False).run()
    scores = pd.read_csv(out / "scores.csv")
    errors = scores["error"].dropna()  # empty error cells read back as NaN
    assert errors.str.startswith("skipped: misclassified").all() and set(scores.loc[errors.index, "metric"]) == {"token_f1"}
    rep = scores.groupby("task")["replacement"].unique().to_dict()
    assert {k: list(v) for k, v in rep.items()} == {"breast-cancer-logreg": ["mean"], "breast-cancer-mlp": ["mean"],
                                                    "synthetic-linear": ["mean"],
                                                    "synthetic-linear-marginal": ["marginal"]}
    man = json.loads((out / "manifest.json").read_text())
    bc = man["tasks"]["breast-cancer-mlp"]["explainers"]["occlusion"]["metrics_not_applicable"]
    assert set(bc) == {"token_f1", "gt_feature_agreement", "gt_rank_agreement", "gt_pearson"}
    assert man["tasks"]["synthetic-linear-marginal"]["replacement"] == "marginal"
    gt = scores[(scores.explainer == "occlusion") & scores.metric.str.startswith("gt_")
                & scores.task.str.startswith("synthetic")]
    assert len(gt) == 2 * 3 * 12 and np.allclose(gt.value, 1.0)
    # the marginal task's baselines differ from the mean task's: so do its occlusion scores
    comp = scores[(scores.explainer == "occlusion") & (scores.metric == "comprehensiveness")].set_index(["task",
                                                                                                          "example"])
    assert not np.allclose(comp.loc["synthetic-linear"].value, comp.loc["synthetic-linear-marginal"].value)
