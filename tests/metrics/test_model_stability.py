"""Model-seed stability on the linear model, whose exact attributions are its (seeded) weights, and
whose randomised model is the embedding matrix re-drawn by the documented rule: each tensor from
N(mean, std) of its own values, seeded by (task, "model_randomization", run seed, tensor name)."""
from dataclasses import replace

import numpy as np
import pytest
import torch

import helpers
from scipy.stats import spearmanr

from helpers import seeded_weights
from xbench.core.seeding import derive_seed
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric
from xbench.tasks.task import load_task


def run_metric(task, explainer_name, **params):
    m = Metric.registry.get("model_seed_stability")(**params)
    return helpers.run_metric(task, m, Explainer.registry.get(explainer_name)())[0], m


def random_model_weights(task, seed=0):
    """Class-1 weight of every vocabulary entry of the fully randomised LinearBag, drawn by hand."""
    w = task.model.model.emb.weight.detach().double()
    g = torch.Generator().manual_seed(derive_seed(task.name, "model_randomization", seed, "emb.weight"))
    drawn = torch.normal(float(w.mean()), float(w.std(correction=0)), tuple(w.shape), generator=g,
                         dtype=torch.float64)
    return drawn[:, 1].float().double().numpy()


def rho_random(task, ex, weights):
    """Spearman ρ of the example's trained-model attributions (its tokens' weights) and the random model's."""
    drawn = random_model_weights(task)
    ids = task.model.tokenizer.convert_tokens_to_ids(ex.features)
    return spearmanr([weights[f] for f in ex.features], drawn[ids]).statistic


def test_identical_models_give_one_minus_the_random_model(linear_task):
    raw, _ = run_metric(linear_task, "input_x_gradient", anchored=False)
    np.testing.assert_allclose(raw, 1.0)
    values, m = run_metric(linear_task, "input_x_gradient")
    assert m.notes["model_seeds"] == [0, 1, 2] and m.notes["anchored"]
    w = seeded_weights(0, 0.0)
    expected = [1.0 - rho_random(linear_task, ex, w) for ex in linear_task.examples]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert m.notes["mean_rho_seeds"] == pytest.approx(1.0)
    assert m.notes["mean_rho_randomized"] == pytest.approx(1.0 - np.mean(expected))
    assert not np.allclose(values, 1.0)  # the anchor is not a no-op on this model


def test_an_explainer_that_ignores_the_model_scores_zero(linear_spec):
    """The bug this fixes: the random control scored a perfect 1 (same attributions under every model)."""
    spec = replace(linear_spec, model=replace(linear_spec.model, params={"seed_noise": 0.8}))
    task = load_task(spec)
    raw, _ = run_metric(task, "random", anchored=False)
    np.testing.assert_allclose(raw, 1.0)
    values, _ = run_metric(task, "random")
    np.testing.assert_allclose(values, 0.0, atol=1e-12)
    exact, _ = run_metric(task, "input_x_gradient")
    assert np.mean(exact) > 0.05  # an explainer that follows the model beats it (0.1 here)


def test_retrained_models_by_hand(linear_spec):
    spec = replace(linear_spec, model=replace(linear_spec.model, params={"seed_noise": 0.8}))
    task = load_task(spec)
    values, _ = run_metric(task, "input_x_gradient")  # attributions = the seed's weights exactly
    w = [seeded_weights(s, 0.8) for s in (0, 1, 2)]
    for i, ex in enumerate(task.examples):
        per = [[wj[f] for f in ex.features] for wj in w]
        expected = np.mean([spearmanr(per[0], per[1]).statistic, spearmanr(per[0], per[2]).statistic])
        assert values[i] == pytest.approx(expected - rho_random(task, ex, w[0]))


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
    # two more models and the random one, each re-explaining 4 examples with 32 IG steps
    assert cost["model_seed_stability"]["forward_passes_per_example"] == 3 * 32
    assert cost["model_seed_stability"]["backward_passes_per_example"] == 3 * 32
