"""Model-seed stability on the linear model, whose exact attributions are its (seeded) weights."""
from dataclasses import replace

import numpy as np
import pytest

import helpers
from scipy.stats import spearmanr

from helpers import seeded_weights
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric
from xbench.tasks.task import load_task


def run_metric(task, explainer_name):
    m = Metric.registry.get("model_seed_stability")()
    return helpers.run_metric(task, m, Explainer.registry.get(explainer_name)())[0], m


def test_identical_models_give_one(linear_task):
    values, m = run_metric(linear_task, "input_x_gradient")
    np.testing.assert_allclose(values, 1.0)
    assert m.notes["model_seeds"] == [0, 1, 2]


def test_retrained_models_by_hand(linear_spec):
    spec = replace(linear_spec, model=replace(linear_spec.model, params={"seed_noise": 0.8}))
    task = load_task(spec)
    values, _ = run_metric(task, "input_x_gradient")  # attributions = the seed's weights exactly
    w = [seeded_weights(s, 0.8) for s in (0, 1, 2)]
    for i, ex in enumerate(task.examples):
        per = [[wj[f] for f in ex.features] for wj in w]
        expected = np.mean([spearmanr(per[0], per[1]).statistic, spearmanr(per[0], per[2]).statistic])
        assert values[i] == pytest.approx(expected)


def test_not_applicable_to_untrained_models(linear_task, monkeypatch):
    from helpers import LinearSource

    monkeypatch.setattr(LinearSource, "seeded", False)
    m = Metric.registry.get("model_seed_stability")()
    assert not m.applies_to(linear_task, Explainer.registry.get("occlusion")())


def test_metric_cost_is_recorded_in_the_manifest(tmp_path):
    import json

    import yaml

    from helpers import LINEAR_TASK
    from xbench.cli import main

    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(LINEAR_TASK))
    suite = tmp_path / "s.yaml"
    suite.write_text("metrics: [comprehensiveness, sufficiency, model_seed_stability, token_f1]\n")
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--suite", str(suite), "--no-progress",
                 "--explainers", "integrated_gradients", "--allow-failures"]) == 0  # c: constant, ρ undefined
    cost = json.loads((tmp_path / "r" / "manifest.json").read_text())["tasks"]["linear"]["explainers"][
        "integrated_gradients"]["metric_cost"]
    # comprehensiveness submits one input per bin (5) for each of the 4 examples
    assert cost["comprehensiveness"]["inputs_requested"] == 5 * 4
    assert cost["token_f1"]["inputs_requested"] == 0 and cost["token_f1"]["forward_passes_per_example"] == 0
    # two more models, each re-explaining 4 examples with 32 IG steps (forward and backward)
    assert cost["model_seed_stability"]["forward_passes_per_example"] == 2 * 32
    assert cost["model_seed_stability"]["backward_passes_per_example"] == 2 * 32
