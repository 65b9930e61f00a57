"""Dense (image and tabular) core: feature maps, baselines, the engine, explainers, the runner."""
from __future__ import annotations

import numpy as np
import pytest

from helpers_dense import IMG_TASK, TAB_TASK, TRAIN_TAB, W_IMG, W_TAB
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task


def tab(**over):
    return load_task(parse_task({**TAB_TASK, **over}, "tab.yaml"))


def img(**over):
    return load_task(parse_task({**IMG_TASK, **over}, "img.yaml"))


def test_tabular_mean_baseline_and_materialize():
    task = tab()
    ex = task.examples[0]
    np.testing.assert_allclose(ex.baseline, TRAIN_TAB.mean(0))
    rows = ex.materialize(np.array([[True, False, True], [False, False, False]]))
    np.testing.assert_allclose(rows, [[3, 2, 0], [1, 2, 1]])


def test_tabular_marginal_baseline_draws_training_values_deterministically():
    a, b = tab(replacement="marginal"), tab(replacement="marginal")
    for ea, eb in zip(a.examples, b.examples):
        np.testing.assert_array_equal(ea.baseline, eb.baseline)
        for j in range(3):
            assert ea.baseline[j] in TRAIN_TAB[:, j]
    assert len({e.baseline.tobytes() for e in a.examples}) > 1  # one draw per example


def test_image_feature_map_and_baselines():
    task = img()
    ex = task.examples[0]
    assert ex.n_features == 4 and ex.features == ["r0c0", "r0c1", "r1c0", "r1c1"]
    np.testing.assert_array_equal(ex.baseline, 0)
    np.testing.assert_array_equal(ex.rationale, [1, 0, 0, 0])
    mean = img(replacement="mean").examples[0]
    np.testing.assert_allclose(mean.baseline, np.full((1, 2, 2), 6.5 / 4))
    blur = img(replacement="blur").examples[0]
    assert blur.baseline.shape == (1, 2, 2) and not np.allclose(blur.baseline, ex.x)
    assert abs(blur.baseline.mean() - ex.x.mean()) < 0.5  # a blur roughly keeps the mean


def test_replacement_must_suit_the_modality():
    from xbench.core.errors import XBenchError

    with pytest.raises(XBenchError, match="field 'replacement' must be one of zero, mean, blur for image"):
        parse_task({**IMG_TASK, "replacement": "mask"}, "img.yaml")
    assert parse_task({k: v for k, v in IMG_TASK.items() if k != "replacement"}, "i").replacement == "zero"
    assert parse_task({k: v for k, v in TAB_TASK.items() if k != "replacement"}, "t").replacement == "mean"


@pytest.mark.parametrize("name", ["occlusion", "integrated_gradients", "kernel_shap", "input_x_gradient"])
def test_explainers_recover_linear_attributions_tabular(name):
    task = tab()
    params = {"n_samples": 300} if name == "kernel_shap" else {}
    exp = Explainer.registry.get(name)(**params)
    out = exp.explain(task, task.examples, [1] * 3)
    for ex, a in zip(task.examples, out.attributions):
        # input x gradient is w * x (no baseline); the others w * (x - baseline)
        want = W_TAB * (ex.x if name == "input_x_gradient" else ex.x - ex.baseline)
        np.testing.assert_allclose(a, want, atol=1e-4)
    assert out.forward.min() >= 1


def test_gradient_explainers_pool_pixels_image():
    task = img()
    out = Explainer.registry.get("integrated_gradients")().explain(task, task.examples, [1] * 3)
    for ex, a in zip(task.examples, out.attributions):
        np.testing.assert_allclose(a, (W_IMG * ex.x[0]).reshape(-1), atol=1e-5)
    assert Explainer.registry.get("attention")().applies_to(task) is False


def test_comprehensiveness_by_hand_tabular():
    """Example t0: x = (3, 1, 0), baseline (1, 2, 1), w = (2, 1, -1): class-1 logit 7.
    Attributions w(x - b) = (4, -1, 1): order a, c, b; bins 1/3 and 2/3 remove the top 1 and 2."""
    import math

    task = tab()
    task.examples = task.examples[:1]
    ex = task.examples[0]
    from helpers import run_metric
    from xbench.explainers.base import Explanations

    a = W_TAB * (ex.x - ex.baseline)
    expl = Explanations("fixed", {}, [ex.id], [a], np.zeros(1), np.zeros(1, int), np.zeros(1, int))
    m = Metric.registry.get("comprehensiveness")(bins=[1 / 3, 2 / 3])
    vals, errs, _ = run_metric(task, m, targets=[1], expl=expl)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    p0 = sig(7.0)
    # top-1 removed: x -> (1, 1, 0): logit 3; top-2 (a, c) removed: (1, 1, 1): logit 2
    assert vals[0] == pytest.approx(((p0 - sig(3.0)) + (p0 - sig(2.0))) / 2, abs=1e-6)


def test_engine_dedupes_dense_rows_by_example_and_mask():
    task = tab()
    engine = task.engine()
    ex = task.examples[0]
    h1 = engine.submit(ex, np.array([[1, 0, 1], [1, 1, 1]], bool))
    h2 = engine.submit(ex, np.array([[1, 0, 1]], bool))
    h3 = engine.submit(task.examples[1], np.array([[1, 0, 1]], bool))
    assert h1[0] == h2[0] and h3[0] != h1[0] and engine.n_unique == 3 and engine.n_requested == 4
    f0 = task.model.n_forward
    engine.run()
    assert task.model.n_forward - f0 == 3


def test_runner_end_to_end_image_and_tabular(tmp_path):
    import pandas as pd

    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner

    # a bias of 10 makes class 1 the prediction everywhere (class 0's logit is constant: zero attributions)
    specs = [parse_task({**TAB_TASK, "model": {"source": "test-linear-dense", "params": {"bias": 10.0}}}, "tab.yaml"),
             parse_task({**IMG_TASK, "model": {"source": "test-linear-dense", "params": {"bias": 10.0, "image": True}}},
                        "img.yaml")]
    cfg = RunConfig(specs, [("occlusion", {}), ("saliency", {}), ("attention", {}), ("random", {})],
                    [("comprehensiveness", {}), ("token_f1", {}), ("sparseness", {}), ("seconds", {})], seed=0)
    out = Runner(cfg, tmp_path / "run", progress=False).run()
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores.task) == {"lin-tab", "lin-img"}
    assert "attention" not in set(scores.explainer)  # text only: skipped, and said so
    import json

    man = json.loads((out / "manifest.json").read_text())
    assert man["tasks"]["lin-img"]["explainers_not_applicable"] == ["attention"]
    # no failures; plausibility leaves the examples the model misclassifies out, and says so
    errors = scores["error"].dropna()
    assert errors.str.startswith("skipped: misclassified").all()
