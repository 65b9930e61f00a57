"""Explainers on the linear bag-of-words model, where exact attributions are the weights."""
import numpy as np
import pytest
import torch

from helpers import WEIGHTS
from xbench.explainers.base import Explainer
from xbench.tasks.task import pool

E = Explainer.registry.get


def exact(task, i=0):
    return np.array([WEIGHTS[w] for w in task.examples[i].features])


@pytest.mark.parametrize("name,params", [
    ("occlusion", {}),
    ("input_x_gradient", {}),
    ("integrated_gradients", {"n_steps": 8}),
    ("kernel_shap", {"n_samples": 64}),
    ("gradient_shap", {"n_samples": 8}),
])
def test_exact_attributions_on_linear_model(linear_task, name, params):
    """For a model linear in its (embedding) inputs with [MASK] = 0, all of these equal W[word, target]."""
    ex = linear_task.examples
    out = E(name)(**params).explain(linear_task, ex, [1] * len(ex), seed=0)
    for i in range(len(ex)):
        np.testing.assert_allclose(out.attributions[i], exact(linear_task, i), atol=1e-4)


def test_saliency_is_the_gradient_norm(linear_task):
    # d logit_1 / d e_j = (0, 1) for every token: |grad| summed over the embedding = 1
    out = E("saliency")().explain(linear_task, linear_task.examples[:1], [1])
    np.testing.assert_allclose(out.attributions[0], np.ones(4))


def test_smoothgrad_of_a_linear_model_is_its_gradient(linear_task):
    out = E("smoothgrad")(nt_samples=4).explain(linear_task, linear_task.examples[:1], [1])
    np.testing.assert_allclose(out.attributions[0], np.ones(4), atol=1e-6)


def test_lime_orders_features_like_the_weights(linear_task):
    out = E("lime")(n_samples=300).explain(linear_task, linear_task.examples[:1], [1])
    assert list(np.argsort(-out.attributions[0])) == [0, 1, 2, 3]  # great, fine, the, bad


def test_l2_reduction_is_recorded_and_used(linear_task):
    e = E("input_x_gradient")(reduce="l2")
    out = e.explain(linear_task, linear_task.examples[:1], [1])
    np.testing.assert_allclose(out.attributions[0], np.abs(exact(linear_task)), atol=1e-6)
    assert out.meta["conventions"]["embedding_reduction"] == "l2"


@pytest.mark.parametrize("name", [e.name for e in Explainer.registry if e.stochastic])
def test_stochastic_explainers_are_seeded(linear_spec, name):
    """Same seed, same scores, whatever state the global RNGs are in; another seed differs;
    the global RNGs are left as they were."""
    from dataclasses import replace

    from xbench.tasks.task import load_task

    task = load_task(replace(linear_spec, explained_output="probability"))  # nonlinear in the input
    ex = task.examples[:2]
    runs = []
    for seed, global_seed in ((3, 0), (3, 1), (4, 0)):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        t_state, n_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
        runs.append(E(name)().explain(task, ex, [1, 1], seed=seed).attributions)
        assert torch.equal(t_state, torch.random.get_rng_state())
        assert np.array_equal(n_state, np.random.get_state()[1])
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(a, b))  # noqa: E731
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])


def test_cost_counts_forward_and_backward_passes(linear_task):
    ex = linear_task.examples[:1]  # 4 features
    counts = {}
    for name, params in [("saliency", {}), ("integrated_gradients", {"n_steps": 8}), ("occlusion", {}),
                         ("kernel_shap", {"n_samples": 50}), ("lime", {"n_samples": 50}),
                         ("smoothgrad", {"nt_samples": 5}), ("random", {})]:
        out = E(name)(**params).explain(linear_task, ex, [1])
        counts[name] = (int(out.forward[0]), int(out.backward[0]))
    assert counts["saliency"] == (1, 1)
    assert counts["integrated_gradients"] == (8, 8)
    assert counts["occlusion"] == (5, 0)  # the input + one per feature
    assert counts["kernel_shap"] == (50, 0)
    assert counts["lime"] == (50, 0)
    assert counts["smoothgrad"] == (5, 5)
    assert counts["random"] == (0, 0)


def test_attention_rollout_by_hand(linear_task):
    ex = linear_task.examples[0]
    L = len(ex.input_ids)
    a1, a2 = torch.eye(L), torch.eye(L)
    a1[1] = 0; a1[1, 0] = a1[1, 1] = 0.5          # token 1 attends half to [CLS]
    a2[0] = 0; a2[0, 0] = a2[0, 1] = 0.5          # [CLS] attends half to token 1
    linear_task.model.model.fixed_attentions = (a1[None, None], a2[None, None])
    # Ā_l = (A_l + I)/2; R = Ā_2 Ā_1; CLS row: [0.8125, 0.1875, 0, ...]
    out = E("attention_rollout")().explain(linear_task, [ex], [1])
    np.testing.assert_allclose(out.attributions[0], [0.1875, 0, 0, 0])
    raw = E("attention")().explain(linear_task, [ex], [1])
    np.testing.assert_allclose(raw.attributions[0], [0.5, 0, 0, 0])


def test_pooling_rules():
    from types import SimpleNamespace

    ex = SimpleNamespace(feature_ids=np.array([-1, 0, 0, 1, -1]), n_features=2)
    s = np.array([9.0, 1.0, 3.0, -2.0, 9.0])
    np.testing.assert_allclose(pool(ex, s, "sum"), [4.0, -2.0])
    np.testing.assert_allclose(pool(ex, s, "mean"), [2.0, -2.0])
    np.testing.assert_allclose(pool(ex, s, "max"), [3.0, -2.0])


@pytest.mark.parametrize("name", [e.name for e in Explainer.registry])
def test_explainer_metadata_is_complete(name):
    cls = E(name)
    assert cls.family in ("gradient", "perturbation", "attention", "control")
    assert isinstance(cls.stochastic, bool) and cls.__doc__
    assert cls.needs <= {"gradients", "attention"}


def test_dummy_axiom(linear_task):
    """'the', 'film' and 'plot' have weight 0: the model ignores them. Occlusion gives them exactly
    zero; LIME and KernelSHAP (200 samples) give them |a| < 0.05 (the other weights are 1 to 2)."""
    ex = linear_task.examples
    ignored = [[f in ("the", "film", "plot") for f in e.features] for e in ex]
    for name, tol in (("occlusion", 0.0), ("kernel_shap", 1e-6), ("lime", 0.05)):
        out = E(name)(n_samples=200) if name != "occlusion" else E(name)()
        attrs = out.explain(linear_task, ex, [1] * len(ex)).attributions
        for a, ign in zip(attrs, ignored):
            assert np.all(np.abs(a[ign]) <= tol), (name, a, ign)
            assert np.all(np.abs(a[~np.array(ign)]) > 0.5), name


def test_explainer_randomness_is_seeded_per_task_explainer_example_and_run_seed(linear_task):
    """The random control's scores are U(0, 1) draws from derive_seed(task, explainer, 'explain',
    example id, run seed), computed here directly: two examples with the same words but other ids,
    or another run seed, draw other numbers."""
    from dataclasses import replace as dc_replace

    from xbench.core.seeding import derive_seed

    ex = linear_task.examples[0]
    twin = dc_replace(ex, id="a-twin")
    random = Explainer.registry.get("random")()
    for seed in (0, 1):
        got = random.explain(linear_task, [ex, twin], [1, 1], seed).attributions
        for e, a in zip((ex, twin), got):
            want = np.random.default_rng(derive_seed("linear", "random", "explain", e.id, seed)).random(e.n_features)
            assert a.tolist() == want.tolist()
        assert got[0].tolist() != got[1].tolist()
    a0 = random.explain(linear_task, [ex], [1], 0).attributions[0]
    a1 = random.explain(linear_task, [ex], [1], 1).attributions[0]
    assert a0.tolist() != a1.tolist()
