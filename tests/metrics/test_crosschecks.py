"""Cross-checks against reference implementations on identical inputs and perturbations.

Quantus draws its random feature subsets from numpy's global RNG; the tests seed it, replay the
same draws, and hand them to xbench's metric, so both evaluate exactly the same perturbations.
The model is the linear bag-of-words model of example 'a' written over a feature-presence
vector (Quantus baseline value 0 = xbench's [MASK], whose weight is 0).
"""
import numpy as np
import pytest
import torch

from helpers import WEIGHTS, run_metric, score

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
    from xbench.metrics.base import Metric

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

    from xbench.metrics.base import Metric
    from xbench.core.seeding import torch_gen

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


def test_max_sensitivity_matches_quantus(linear_task):
    """Quantus MaxSensitivity on the linear model over word-embedding inputs, fed xbench's own
    embedding noise sample by sample (identical perturbations), equals xbench's max_sensitivity
    for input x gradient (attribution of token j = its class-1 embedding entry)."""
    quantus = pytest.importorskip("quantus")
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.metrics.stability import _noise

    task = linear_task
    task.examples = task.examples[:1]
    ex = task.examples[0]
    explainer = Explainer.registry.get("input_x_gradient")()
    n, radius = 6, 0.3
    m = Metric.registry.get("max_sensitivity")(radius=radius, n_samples=n)
    values, _, ctx = run_metric(task, m, explainer, [1])
    ours = values[0]
    assert m.notes["share_kept"] == 1.0

    weight = task.model.model.get_input_embeddings().weight.detach().double().numpy()
    feat_ids = ex.input_ids[ex.feature_ids >= 0]
    x = weight[feat_ids][None, None]  # (1, 1, F, 2): the example's word embeddings
    noises = []
    for s in range(n):
        rows, noise = _noise(ctx, 0, radius, s)
        per_token = np.stack([noise.numpy()[list(rows).index(t)] for t in feat_ids])
        noises.append(per_token.reshape(1, -1))
    draws = iter(noises)

    def perturb(arr, **kwargs):
        return arr + next(draws)

    class Emb(torch.nn.Module):
        def forward(self, e):
            logit = e.reshape(len(e), -1, 2)[..., 1].sum(-1).float()
            return torch.stack([torch.zeros_like(logit), logit], 1)

    def explain(model, inputs, targets, **kwargs):  # input x gradient: e * d logit_1 / d e = (0, e_1)
        a = np.zeros_like(inputs)
        a.reshape(len(a), -1, 2)[..., 1] = np.asarray(inputs).reshape(len(a), -1, 2)[..., 1]
        return a

    q = quantus.MaxSensitivity(nr_samples=n, perturb_func=perturb, disable_warnings=True)
    expected = q(model=Emb().eval(), x_batch=x, y_batch=np.array([1]), a_batch=explain(None, x, None),
                 explain_func=explain, device="cpu")[0]
    assert ours == pytest.approx(expected, rel=1e-6)
    assert ours > 0.01


def test_full_randomization_matches_quantus_mprt(linear_task, monkeypatch):
    """Quantus MPRT re-initialises each layer with ``reset_parameters()`` after seeding torch's global
    RNG; xbench re-draws each tensor from N(mean, std) with its own generator. For identical random
    weights the test gives xbench Quantus's re-initialisation, then compares the Spearman similarity
    of |attributions| (input x gradient) before and after, per example."""
    quantus = pytest.importorskip("quantus")
    from helpers import LinearBag
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.metrics import sanity

    def quantus_reinit(model, names, *parts):  # what Quantus does to the model's one layer, seed 42
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(42 + 1)
            model.emb.reset_parameters()

    monkeypatch.setattr(sanity, "randomize_", quantus_reinit)
    task = linear_task
    explainer = Explainer.registry.get("input_x_gradient")()
    ours, _, _ = run_metric(task, Metric.registry.get("randomization_full")(), explainer)

    model: LinearBag = task.model.model

    def explain(model, inputs, targets, **kwargs):  # input x gradient = the tokens' class-1 weights
        w = model.emb.weight.detach().numpy()
        return np.asarray(w[np.asarray(inputs, dtype=np.int64).reshape(len(inputs), -1), 1])[:, None, :]

    q = quantus.MPRT(layer_order="independent", seed=42, return_last_correlation=True, abs=True,
                     normalise=False, disable_warnings=True)
    for i, ex in enumerate(task.examples):  # Quantus needs equal-length batches: one example at a time
        ids = ex.input_ids[ex.feature_ids >= 0][None, None].astype(np.float32)
        with torch.random.fork_rng(devices=[]):
            res = q(model=model, x_batch=ids, y_batch=np.array([1]), a_batch=explain(model, ids, None),
                    explain_func=explain, device="cpu")
        expected = res[0] if isinstance(res, list) else list(res.values())[-1][0]
        assert ours[i] == pytest.approx(expected, abs=1e-9), (i, ours[i], expected)
    assert np.all(np.abs(ours) < 0.99)  # the random weights did change the explanations
