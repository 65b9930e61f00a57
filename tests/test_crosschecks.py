"""Cross-checks against reference implementations on identical inputs and perturbations.

Quantus draws its random feature subsets from numpy's global RNG; the tests seed it, replay the
same draws, and hand them to xbench's metric, so both evaluate exactly the same perturbations.
The model is the linear bag-of-words model of example 'a' written over a feature-presence
vector (Quantus baseline value 0 = xbench's [MASK], whose weight is 0).
"""
import numpy as np
import pytest
import torch

from helpers import WEIGHTS, score

TOL = 1e-6  # both sides compute in float32 model outputs, then float64


class Presence(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = torch.tensor(w, dtype=torch.float32)

    def forward(self, x):
        logit = x.float().reshape(len(x), -1) @ self.w
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


@pytest.mark.parametrize("softmax", [False, True])
def test_faithfulness_correlation_matches_quantus(linear_task, softmax):
    quantus = pytest.importorskip("quantus")
    from xbench.metrics import Metric

    ex = linear_task.examples[0]
    w = [WEIGHTS[f] for f in ex.features]
    attrs = np.array([0.3, -1.0, 2.0, 0.5])  # not the exact attributions, so ρ is not trivially 1
    runs, k = 12, 2
    q = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=k, normalise=False, abs=False,
                                        perturb_baseline=0.0, disable_warnings=True, return_aggregate=False)
    np.random.seed(7)
    expected = q(model=Presence(w).eval(), x_batch=np.ones((1, 1, 4), dtype=np.float32), y_batch=np.array([1]),
                 a_batch=attrs[None, None].astype(np.float32), device="cpu", softmax=softmax)[0]
    np.random.seed(7)
    draws = [np.random.choice(4, k, replace=False) for _ in range(runs)]
    removed = np.zeros((runs, 4), dtype=bool)
    for r, d in enumerate(draws):
        removed[r, d] = True
    m = Metric.registry.get("faithfulness_correlation")(n_samples=runs, output="probability" if softmax else "logit")
    m.subsets = lambda ctx, i: removed  # the same perturbations as Quantus drew
    v, _ = score(linear_task, m, [attrs])
    assert v[0] == pytest.approx(expected, abs=TOL)
    assert -1 < v[0] < 1


def test_infidelity_matches_a_direct_captum_call(linear_task):
    """xbench routes captum's infidelity through the perturbation engine in token-id space; a
    direct captum call on the presence-vector model, with the same seeded perturbations, agrees."""
    from captum.metrics import infidelity

    from xbench.metrics import Metric
    from xbench.seeding import torch_gen

    ex = linear_task.examples[0]
    w = [WEIGHTS[f] for f in ex.features]
    attrs = np.array([0.3, -1.0, 2.0, 0.5])
    m = Metric.registry.get("infidelity")(n_perturb_samples=16)
    v, _ = score(linear_task, m, [attrs])
    gen = torch_gen(linear_task.name, "fixed", "infidelity", ex.id, 0)

    def perturb(z):
        removed = (torch.rand(z.shape, generator=gen) < 0.25).to(z.dtype)
        return removed, z - removed

    model = Presence(w)
    expected = infidelity(lambda z: torch.softmax(model(z), -1), perturb, torch.ones(1, 4, dtype=torch.float64),
                          torch.from_numpy(attrs)[None], target=1, n_perturb_samples=16, normalize=True)
    assert v[0] == pytest.approx(float(expected[0]), abs=TOL)
    assert v[0] > 0
