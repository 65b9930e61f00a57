"""``synthetic-interactions``: the true attribution with pairwise terms is the Shapley value, checked
against an independent reference (every one of the 2^10 coalitions of the generator's log-odds
enumerated, removed features at the example's baseline), and against captum's Integrated Gradients
called directly (exact on a quadratic); leave-one-out occlusion is shown to differ, which is what
gives the task its headroom."""
import itertools
import math

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from xbench.data.base import DatasetSource
from xbench.tasks.catalogue import parse_task, resolve_task
from xbench.tasks.task import load_task


def spec10():
    """The shipped task with 10 features (2^10 coalitions to enumerate), otherwise as shipped."""
    import yaml

    with open(resolve_task("synthetic-interactions").path) as f:
        d = yaml.safe_load(f)
    d["dataset"]["params"].update(n_features=10, n_train=200, n_test=20)
    return parse_task(d, "synthetic-interactions-10.yaml")


@pytest.fixture(scope="module")
def task():
    return load_task(spec10(), 6)


def log_odds(model, rows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.as_tensor(rows, dtype=torch.float32))
    return (out[:, 1] - out[:, 0]).double().numpy()


def brute_force_shapley(model, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    f = len(x)
    subsets = list(itertools.product([0, 1], repeat=f))
    rows = np.array([np.where(np.array(s, bool), x, v) for s in subsets])
    value = dict(zip(subsets, log_odds(model, rows)))
    phi = np.zeros(f)
    for s in subsets:
        k = sum(s)
        for j in range(f):
            if not s[j]:
                with_j = s[:j] + (1,) + s[j + 1:]
                phi[j] += math.factorial(k) * math.factorial(f - k - 1) / math.factorial(f) * (value[with_j] - value[s])
    return phi


def test_the_generator_has_interactions_in_the_gold(task):
    spec = spec10()
    src = DatasetSource.registry.get(spec.dataset.source)(**spec.dataset.params)
    splits = src.load(spec.dataset.seed)
    inter = splits.info["truth_interactions"]
    assert len(inter) == 2
    w = np.asarray(splits.info["truth_weights"])
    for i, j, beta in inter:
        assert w[i] == 0 and w[j] == 0 and 1 <= abs(beta) <= 2.5
        assert task.examples[0].rationale[i] == 1 and task.examples[0].rationale[j] == 1
    assert splits.info["generator_test_accuracy"] > 0.85


def test_truth_is_the_shapley_value_by_enumeration(task):
    model = task.model.model
    for ex in task.examples[:4]:
        expected = brute_force_shapley(model, ex.x.astype(np.float64), ex.baseline.astype(np.float64))
        np.testing.assert_allclose(ex.truth, expected, rtol=1e-4, atol=1e-5)


def test_integrated_gradients_matches_it_and_occlusion_does_not(task):
    model = task.model.model
    ig = IntegratedGradients(lambda t: model(t)[:, 1] - model(t)[:, 0])
    gaps = []
    for ex in task.examples[:4]:
        x = torch.as_tensor(ex.x[None], dtype=torch.float64)
        base = torch.as_tensor(ex.baseline[None], dtype=torch.float64)
        attr = ig.attribute(x.float(), base.float(), n_steps=64, method="gausslegendre")[0].double().numpy()
        np.testing.assert_allclose(attr, ex.truth, rtol=1e-3, atol=1e-4)
        full = log_odds(model, ex.x[None])[0]
        loo = np.array([full - log_odds(model, np.where(np.arange(len(ex.x)) == j, ex.baseline, ex.x)[None])[0]
                        for j in range(len(ex.x))])
        gaps.append(np.abs(loo - ex.truth).max())
    assert max(gaps) > 0.05  # occlusion is not the Shapley value where the pairs interact
