"""Complexity and sanity metrics against values computed by hand, and against Quantus.

The linear bag-of-words model (helpers.py) has logit_1 = Σ_j W[id_j, 1] with W[·, 0] = 0, so:
input x gradient and occlusion of the class-1 logit are the weights, those of the class-0 logit are
all zero, and with a softmax output the two classes' attributions are exact negatives. Re-drawing
the embedding (its only weight matrix) makes the attributions the re-drawn weights.
"""
import copy
import math
from dataclasses import replace

import numpy as np
import pytest

import helpers
import torch
from scipy.stats import spearmanr

import xbench.metrics.complexity as C
import xbench.metrics.sanity as S
from helpers import WEIGHTS, score
from xbench.explainers.base import Explainer
from xbench.metrics.base import BAD_ATTRIBUTIONS, Context, Metric
from xbench.core.seeding import torch_gen
from xbench.tasks.task import load_task

M = Metric.registry.get
E = Explainer.registry.get
EPS = 1e-7  # Quantus Sparseness's epsilon


# -- complexity -----------------------------------------------------------------------------------

def test_sparseness_by_hand(linear_task):
    attrs = [[0.0, 0.0, 3.0, 0.0],    # one-hot: G = (F − 1) / (F (1 + F·eps)), F = 4
             [2.0, -2.0, 2.0, 2.0],   # uniform |a|: 0
             [0.0, 0.0, 0.0],         # all zero: fails, as Quantus refuses it
             [1.0, -2.0, 3.0, 0.5, 0.0]]
    v, err = score(linear_task, M("sparseness")(), attrs)
    assert err == [None, None, C.ALL_ZERO, None] and np.isnan(v[2])
    assert v[0] == pytest.approx(3 / (4 * (1 + 4 * EPS)), abs=1e-15)  # 0.7499997
    assert abs(v[1]) < 1e-15
    # |a|/3 + eps sorted: 0, 1/6, 1/3, 2/3, 1 with weights 2i − F − 1 = −4, −2, 0, 2, 4
    num = -4 * EPS - 2 * (1 / 6 + EPS) + 0 + 2 * (2 / 3 + EPS) + 4 * (1 + EPS)
    den = 5 * (13 / 6 + 5 * EPS)
    assert v[3] == pytest.approx(num / den, abs=1e-15)
    assert v[3] == pytest.approx(6 / 13, abs=1e-6)  # 5 / (65/6) without the epsilon


def test_complexity_by_hand(linear_task):
    attrs = [[1.0, 1.0, -1.0, 1.0],   # uniform: ln 4
             [0.0, 5.0, 0.0, 0.0],    # one-hot: 0
             [1.0, -1.0, 2.0],        # p = 1/4, 1/4, 1/2: 1.5 ln 2
             [0.0] * 5]               # all zero: no distribution
    v, err = score(linear_task, M("complexity")(), attrs)
    assert v[0] == pytest.approx(math.log(4), abs=1e-9)
    assert v[1] == 0.0
    assert v[2] == pytest.approx(1.5 * math.log(2), abs=1e-9)
    assert err == [None, None, None, C.ALL_ZERO] and np.isnan(v[3])


def test_complexity_metrics_report_bad_attributions(linear_task):
    for name in ("sparseness", "complexity"):
        v, err = score(linear_task, M(name)(), [[1.0, np.nan, 0.0, 2.0]])
        assert err == [BAD_ATTRIBUTIONS] and np.isnan(v[0])


def test_complexity_metrics_match_quantus():
    """Quantus's Sparseness and Complexity themselves, on the same attribution vectors: one call per
    vector (Quantus normalises by the maximum over its whole batch, xbench per example), as (1, 1, F)
    time series with no model. Quantus refuses all-zero vectors and vectors of one feature."""
    quantus = pytest.importorskip("quantus")
    rng = np.random.default_rng(0)
    vectors = [np.array([0.0, 0.0, 3.0, 0.0]), np.array([2.0, -2.0, 2.0]), np.array([1.0, -2.0, 3.0, 0.5])]
    vectors += [rng.normal(size=int(rng.integers(2, 40))) for _ in range(12)]
    vectors += [rng.integers(-2, 3, size=int(rng.integers(2, 20))).astype(float)  # ties, zeros
                for _ in range(6)]
    sparseness = quantus.Sparseness(disable_warnings=True)
    complexity = quantus.Complexity(disable_warnings=True)
    for a in vectors:
        if not a.any():
            continue
        kw = dict(model=None, x_batch=np.zeros((1, 1, len(a))), y_batch=np.array([0]), channel_first=True)
        assert C.gini(a) == pytest.approx(sparseness(a_batch=a[None, None].copy(), **kw)[0], abs=1e-12), a
        # up to 1e-12 apart: xbench clips Quantus's −1e-12 of a one-hot vector to 0
        assert C.entropy(a) == pytest.approx(complexity(a_batch=a[None, None].copy(), **kw)[0], abs=1e-11), a


def test_one_feature_is_neither_sparse_nor_complex():
    assert C.gini(np.array([7.0])) == 0.0  # the single weight 2·1 − 1 − 1 = 0
    assert C.entropy(np.array([-7.0])) == 0.0


# -- sanity: helpers -----------------------------------------------------------------------------

def test_rank_similarity_conventions():
    assert S.rank_similarity(np.array([1.0, 2.0, 3.0]), np.array([30.0, 20.0, 10.0])) == (-1.0, False)
    a, b = np.array([0.5, 0.5, 2.0, -1.0]), np.array([1.0, 3.0, 2.0, 0.0])  # ties: average ranks
    assert S.rank_similarity(a, b)[0] == pytest.approx(spearmanr(a, b).statistic, abs=1e-15)
    assert S.rank_similarity(np.zeros(3), np.array([1.0, 2.0, 3.0])) == (0.0, True)
    assert S.rank_similarity(np.array([1.0, 2.0, 3.0]), np.full(3, 4.0)) == (0.0, True)
    assert S.rank_similarity(np.zeros(3), np.full(3, 4.0)) == (1.0, True)


def test_other_class_is_uniform_over_the_others():
    assert all(S.other_class(t, 2, np.random.default_rng(s)) == 1 - t for t in (0, 1) for s in range(5))
    rng = np.random.default_rng(0)
    draws = [S.other_class(2, 5, rng) for _ in range(400)]
    assert set(draws) == {0, 1, 3, 4}
    assert S.other_class(2, 5, np.random.default_rng(1)) == S.other_class(2, 5, np.random.default_rng(1))


def test_off_classes_are_seeded_per_example_not_per_explainer(linear_task):
    linear_task.model.num_labels = 7  # only the draw is tested here, nothing is explained
    eng = linear_task.engine()
    m = M("random_logit")()
    out = []
    for e in ("random", "occlusion"):
        expl = E(e)().explain(linear_task, linear_task.examples, [1] * 4)
        ctx = Context(linear_task, expl, np.array([3, 3, 0, 6]), eng, 5, E(e)())
        out.append(m.off_classes(ctx, [0, 1, 2, 3]))
    assert np.array_equal(out[0], out[1])
    assert all(0 <= c < 7 and c != t for c, t in zip(out[0], [3, 3, 0, 6]))


def tiny_bert(layers=2):
    from transformers import BertConfig, BertForSequenceClassification

    from xbench.core.seeding import isolated_global_rng

    with isolated_global_rng(0):
        return BertForSequenceClassification(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=layers,
                                                        num_attention_heads=2, intermediate_size=16))


def test_layer_groups_of_bert_and_of_the_linear_model(linear_task):
    m = tiny_bert()
    groups = S.layer_groups(m)
    assert [g for g, _ in groups] == ["classifier+bert.pooler", "bert.encoder.layer.1", "bert.encoder.layer.0",
                                      "bert.embeddings"]
    names = [n for _, ps in groups for n in ps]
    assert sorted(names) == sorted(n for n, _ in m.named_parameters())  # each parameter exactly once
    assert S.layer_groups(linear_task.model.model) == [("bias", ["bias"]), ("emb", ["emb.weight"])]
    # 12 blocks: 14 groups, explained after 4 of the cumulative steps, first and last included
    assert len(S.layer_groups(tiny_bert(12))) == 14
    assert M("randomization_cascade")().checkpoints(14) == [0, 4, 9, 13]
    assert M("randomization_cascade")().checkpoints(4) == [0, 1, 2, 3]
    assert M("randomization_cascade")(max_stages=2).checkpoints(2) == [0, 1]


def test_randomize_keeps_each_tensors_moments_and_the_global_rng():
    m = tiny_bert()
    m2 = copy.deepcopy(m)
    w = m.bert.encoder.layer[0].intermediate.dense.weight.detach().clone()  # 128 values
    state = torch.random.get_rng_state()
    names = [n for n, _ in m2.named_parameters()]
    S.randomize_(m2, names, "t", 0)
    assert torch.equal(state, torch.random.get_rng_state())
    new = m2.bert.encoder.layer[0].intermediate.dense.weight.detach()
    assert not torch.equal(new, w)
    se = float(w.std()) / math.sqrt(w.numel())
    assert float(new.mean()) == pytest.approx(float(w.mean()), abs=4 * se)
    assert float(new.std()) == pytest.approx(float(w.std()), rel=0.25)
    # a constant tensor (untrained LayerNorm: all ones) stays as it is
    assert torch.equal(m2.bert.embeddings.LayerNorm.weight, m.bert.embeddings.LayerNorm.weight)
    # the same name and seed give the same draw whatever else is randomised with it
    m3 = copy.deepcopy(m)
    S.randomize_(m3, ["bert.encoder.layer.0.intermediate.dense.weight"], "t", 0)
    assert torch.equal(m3.bert.encoder.layer[0].intermediate.dense.weight, new)


# -- sanity: random logit ------------------------------------------------------------------------

def run_metric(task, metric, explainer, targets=None, seed=0):
    return helpers.run_metric(task, metric, explainer, targets, seed)[:2]


@pytest.mark.parametrize("name", ["input_x_gradient", "occlusion"])
def test_random_logit_on_the_linear_logit(linear_task, name):
    """The class-0 logit has all-zero weights: its attributions are all zero, a constant vector,
    whose Spearman ρ with the class-1 weights is undefined; xbench takes it as 0."""
    e = E(name)()
    zero = e.explain(linear_task, linear_task.examples, [0] * 4).attributions
    assert all(not a.any() for a in zero)
    m = M("random_logit")()
    v, err = run_metric(linear_task, m, e)
    assert err == [None] * 4
    assert np.array_equal(v, np.zeros(4))
    assert m.notes == {"n_constant": 4}


@pytest.mark.parametrize("name", ["input_x_gradient", "occlusion", "integrated_gradients"])
def test_random_logit_of_the_softmax_is_minus_one(linear_spec, name):
    """With the probability explained, p_0 = 1 − p_1: class 0's attributions are exactly the
    negatives of class 1's (∂p_0/∂e = −∂p_1/∂e; p_0(x) − p_0(x\\j) = −(p_1(x) − p_1(x\\j))), ρ = −1."""
    task = load_task(replace(linear_spec, explained_output="probability"))
    params = {"n_steps": 8} if name == "integrated_gradients" else {}
    v, err = run_metric(task, M("random_logit")(), E(name)(**params))
    assert err == [None] * 4
    np.testing.assert_allclose(v, -1.0, atol=1e-12)


def test_random_logit_fails_a_class_blind_explainer(linear_task):
    """The random control explains every class with the same draws (same seed): ρ = 1 exactly."""
    v, err = run_metric(linear_task, M("random_logit")(), E("random")())
    assert err == [None] * 4
    np.testing.assert_allclose(v, 1.0, atol=1e-12)  # scipy's ρ of identical vectors: 1 − 2e-16


class _NanForClassZero(Explainer):
    """Test explainer: the weights for class 1, NaN for class 0."""

    family = "control"

    def attribute(self, inputs, seed):
        return np.array([WEIGHTS[f] if inputs.target == 1 else np.nan for f in inputs.example.features])


_NanForClassZero.name = "test-nan-class0"  # set after the class body: not registered


def test_non_finite_reexplanation_and_one_feature_examples_fail_with_a_reason(linear_task):
    one = linear_task.examples[2]  # "bad the plot" cut to "bad"
    linear_task.examples[2] = replace(one, input_ids=one.input_ids[[0, 1, 4]], features=["bad"],
                                      feature_ids=np.array([-1, 0, -1]), rationale=np.array([1], dtype=np.int8))
    v, err = run_metric(linear_task, M("random_logit")(), _NanForClassZero())
    assert err == [S.BAD_REEXPLANATION, S.BAD_REEXPLANATION, S.TOO_FEW, S.BAD_REEXPLANATION]
    assert np.isnan(v).all()


# -- sanity: model randomisation -----------------------------------------------------------------

def redrawn_embedding(task, seed=0):
    """The randomised embedding, from the specification (not from xbench's code): N(mean, std) of the
    trained matrix, drawn by the generator seeded with (task, 'model_randomization', seed, name)."""
    w = task.model.model.emb.weight.detach().double()
    g = torch_gen(task.name, "model_randomization", seed, "emb.weight")
    return torch.normal(float(w.mean()), float(w.std(correction=0)), tuple(w.shape), generator=g,
                        dtype=torch.float64).float().double().numpy()


def expected_rho(task, attributions_of, absolute=True):
    """Per example: ρ_S of the trained and the randomised model's attributions, by hand."""
    W = task.model.model.emb.weight.detach().double().numpy()
    R = redrawn_embedding(task)
    f = np.abs if absolute else (lambda x: x)
    out = []
    for ex in task.examples:
        out.append(spearmanr(f(attributions_of(W, ex)), f(attributions_of(R, ex))).statistic)
    return np.array(out)


MASK = 4  # [MASK]'s id in the test tokenizer


def fid(ex):
    """Token ids of the example's features."""
    return ex.input_ids[ex.feature_ids >= 0]


@pytest.mark.parametrize("name,attr", [
    ("input_x_gradient", lambda W, ex: W[fid(ex), 1]),            # e_j · ∂logit_1/∂e_j = W[id_j, 1]
    ("occlusion", lambda W, ex: W[fid(ex), 1] - W[MASK, 1]),      # [MASK]'s row is re-drawn too
])
@pytest.mark.parametrize("absolute", [True, False])
def test_full_randomisation_by_hand(linear_task, name, attr, absolute):
    expected = expected_rho(linear_task, attr, absolute)
    v, err = run_metric(linear_task, M("randomization_full")(abs=absolute), E(name)())
    assert err == [None] * 4
    np.testing.assert_allclose(v, expected, atol=1e-9)
    assert v.mean() < 0.6  # randomising the only weights changes the attributions


def test_cascade_by_hand_and_its_last_stage_is_the_full_randomisation(linear_task):
    """Groups: 'bias' (zero, std 0: unchanged; a logit's gradient does not see it anyway), then 'emb'."""
    m = M("randomization_cascade")()
    v, err = run_metric(linear_task, m, E("input_x_gradient")())
    rho_full = expected_rho(linear_task, lambda W, ex: W[fid(ex), 1])
    assert err == [None] * 4
    np.testing.assert_allclose(v, (1.0 + rho_full) / 2, atol=1e-9)
    assert m.notes["stages"] == ["bias", "emb"]
    assert m.notes["mean_spearman_per_stage"] == pytest.approx([1.0, rho_full.mean()], abs=1e-9)
    full, _ = run_metric(linear_task, M("randomization_full")(), E("input_x_gradient")())
    assert m.notes["mean_spearman_per_stage"][-1] == pytest.approx(full.mean(), abs=1e-12)


def test_full_randomisation_of_a_nonlinear_output_by_hand(linear_spec):
    """Occlusion of p_1 = σ(z), z = Σ_{all tokens t} d[id_t] ([CLS] and [SEP] too: their rows are
    re-drawn), d = W[:, 1] − W[:, 0] (the zero bias stays 0): a_j = σ(z) − σ(z − d[id_j] + d[MASK])."""
    task = load_task(replace(linear_spec, explained_output="probability"))

    def occ(W, ex):
        d = W[:, 1] - W[:, 0]
        z, ids = d[ex.input_ids].sum(), fid(ex)
        sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        return sig(z) - sig(z - d[ids] + d[MASK])

    v, err = run_metric(task, M("randomization_full")(), E("occlusion")())
    assert err == [None] * 4
    np.testing.assert_allclose(v, expected_rho(task, occ), atol=1e-6)


@pytest.mark.parametrize("metric", ["randomization_full", "randomization_cascade"])
def test_randomisation_fails_a_model_blind_explainer(linear_task, metric):
    """The random control draws the same scores from the same seed whatever the model: ρ = 1."""
    v, err = run_metric(linear_task, M(metric)(), E("random")())
    assert err == [None] * 4
    np.testing.assert_allclose(v, 1.0, atol=1e-12)


def test_randomisation_is_deterministic_and_leaves_the_model_and_global_rng(linear_spec):
    task = load_task(replace(linear_spec, explained_output="probability"))
    before = {k: v.clone() for k, v in task.model.model.state_dict().items()}
    runs = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        t_state, n_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
        runs.append(run_metric(task, M("randomization_cascade")(), E("lime")(n_samples=40))[0])
        assert torch.equal(t_state, torch.random.get_rng_state())
        assert np.array_equal(n_state, np.random.get_state()[1])
    assert np.array_equal(runs[0], runs[1])
    assert all(torch.equal(before[k], v) for k, v in task.model.model.state_dict().items())
    other_seed, _ = run_metric(task, M("randomization_cascade")(), E("lime")(n_samples=40), seed=1)
    assert not np.array_equal(runs[0], other_seed)


def test_max_stages_is_validated():
    from xbench.core.errors import XBenchError

    with pytest.raises(XBenchError, match="max_stages"):
        M("randomization_cascade")(max_stages=0)
