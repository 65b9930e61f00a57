"""Model-seed stability on the linear model, whose exact attributions are its (seeded) weights."""
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr

from helpers import seeded_weights
from xbench.explainers import Explainer
from xbench.metrics import Context, Metric
from xbench.perturb import PerturbationEngine
from xbench.task import load_task


def run_metric(task, explainer_name):
    explainer = Explainer.registry.get(explainer_name)()
    targets = np.ones(len(task.examples), dtype=int)
    expl = explainer.explain(task, task.examples, targets.tolist())
    engine = PerturbationEngine(task.model, task.spec.replacement)
    ctx = Context(task, expl, targets, engine, 0, explainer)
    m = Metric.registry.get("model_seed_stability")()
    states = m.plan(ctx)
    engine.run()
    return m.score(ctx, states)[0], m


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
