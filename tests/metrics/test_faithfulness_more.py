"""Reference values for the faithfulness metrics beyond ERASER's AOPC, on the linear model.

Example 'a' = great fine the bad, class-1 weights (2, 1, 0, -1), full logit 2;
example 'd' = fine film bad great the, weights (1, 0, -1, 2, 0), full logit 2.
"""
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr

from helpers import WEIGHTS, score
from helpers import sigmoid as s
from xbench.metrics.base import Metric
from xbench.tasks.task import load_task

M = Metric.registry.get
W_A = [2.0, 1.0, 0.0, -1.0]


def test_log_odds_variants_by_hand(linear_task):
    # lo(σ(z)) = z: the AOPC becomes an average of logit drops
    v, _ = score(linear_task, M("comprehensiveness_log_odds")(bins=[0.25, 0.5]), [W_A])
    assert v[0] == pytest.approx(np.mean([2 - 0, 2 - (-1)]), abs=1e-6)
    v, _ = score(linear_task, M("sufficiency_log_odds")(bins=[0.25, 0.5]), [W_A])
    assert v[0] == pytest.approx(np.mean([2 - 2, 2 - 3]), abs=1e-6)


def test_decision_flip_by_hand(linear_task):
    linear_task.examples = [linear_task.examples[3]]  # 'd'
    # order fine, film, great, the, bad: logits 1, 1, -1 -> flips after 3 of 5 features
    m = M("decision_flip")()
    v, _ = score(linear_task, m, [[5.0, 4.0, 0.0, 3.0, 1.0]])
    assert v[0] == pytest.approx(3 / 5) and m.notes == {"examples_never_flipped": 0}


def test_decision_flip_never_flipping(linear_spec):
    task = load_task(replace(linear_spec, model=replace(linear_spec.model, params={"bias": 0.5})))
    task.examples = [task.examples[1]]  # 'b' = the film great plot: without 'great' the logit is 0.5
    m = M("decision_flip")()
    v, _ = score(task, m, [[4.0, 3.0, 2.0, 1.0]])
    assert v[0] == 1.0 and m.notes == {"examples_never_flipped": 1}


def test_taucorr_loo_by_hand(linear_task):
    v, _ = score(linear_task, M("taucorr_loo")(), [W_A])
    assert v[0] == pytest.approx(1.0)  # LOO drops σ(2) − σ(2 − w) are increasing in w
    v, _ = score(linear_task, M("taucorr_loo")(), [W_A[::-1]])
    assert v[0] == pytest.approx(-1.0)
    v, _ = score(linear_task, M("taucorr_loo")(), [[2.0, 1.0, -1.0, 0.0]])
    assert v[0] == pytest.approx((5 - 1) / 6)  # one discordant pair out of six


def test_monotonicity_by_hand(linear_task):
    drops = np.array([s(2) - s(0), s(2) - s(1), 0.0, s(2) - s(3)])
    v, _ = score(linear_task, M("monotonicity_correlation")(), [W_A])
    assert v[0] == pytest.approx(spearmanr(np.abs(W_A), drops ** 2).statistic)
    assert v[0] == pytest.approx(0.9486832980505138)  # ranks (4, 2.5, 1, 2.5) vs (4, 3, 1, 2)


def test_loo_inputs_are_shared_across_explainers(linear_task):
    from helpers import fixed_explanations
    from xbench.metrics.base import Context

    engine = linear_task.engine()
    targets = np.ones(len(linear_task.examples), dtype=int)
    for attrs in ([np.arange(ex.n_features, dtype=float) for ex in linear_task.examples],
                  [-np.arange(ex.n_features, dtype=float) for ex in linear_task.examples]):
        ctx = Context(linear_task, fixed_explanations(linear_task, attrs), targets, engine)
        M("taucorr_loo")().plan(ctx)
        M("monotonicity_correlation")().plan(ctx)
    # one full input and F leave-one-out inputs per example, whatever the explainers and metrics
    assert engine.n_unique == sum(1 + ex.n_features for ex in linear_task.examples)


def test_faithfulness_correlation_exact_on_a_linear_logit(linear_task):
    m = M("faithfulness_correlation")(output="logit", n_samples=16, subset_size=0.5)
    v, _ = score(linear_task, m, [W_A])
    assert v[0] == pytest.approx(1.0)  # logit drop = Σ_{i∈S} w_i exactly
    v, _ = score(linear_task, m, [[-w for w in W_A]])
    assert v[0] == pytest.approx(-1.0)
    v, _ = score(linear_task, M("faithfulness_correlation")(n_samples=16, subset_size=0.5), [W_A])
    assert 0.9 < v[0] < 1.0  # in probability the sigmoid bends it


def test_infidelity_zero_for_exact_attributions_any_scale(linear_task):
    m = M("infidelity")(output="logit")
    for scale in (1.0, 3.0):  # normalize=True: the best β absorbs the scale
        v, _ = score(linear_task, m, [[scale * w for w in W_A]])
        assert v[0] == pytest.approx(0.0, abs=1e-9)
    v, _ = score(linear_task, m, [[1.0, -1.0, 2.0, 0.0]])
    assert v[0] > 0.05


def test_normalized_aopc_bounds_by_hand(linear_task):
    # 'a' with bins 25/50%: the best removal chain is {great} ⊂ {great, fine} (logits 0, -1), the
    # worst {bad} ⊂ {bad, the} (logits 3, 3); comp = mean of drops σ(2) − σ(logit)
    hi = np.mean([s(2) - s(0), s(2) - s(-1)])
    lo = np.mean([s(2) - s(3), s(2) - s(3)])
    m = M("comprehensiveness_normalized")(bins=[0.25, 0.5], beam=2)
    v, _ = score(linear_task, m, [W_A])
    assert v[0] == pytest.approx(1.0)
    v, _ = score(linear_task, m, [[-w for w in W_A]])  # bad, the first: the worst order
    assert v[0] == pytest.approx(0.0, abs=1e-9)
    v, _ = score(linear_task, m, [[2.0, 0.0, 1.0, -1.0]])  # great, the: drops σ2−σ0, σ2−σ0
    assert v[0] == pytest.approx((np.mean([s(2) - s(0)] * 2) - lo) / (hi - lo))
    assert m.notes["clipped"] == 0
    # sufficiency: keeping {great, fine} is the most sufficient chain, {bad, the} the least
    ms = M("sufficiency_normalized")(bins=[0.25, 0.5])
    v, _ = score(linear_task, ms, [W_A])
    assert v[0] == pytest.approx(0.0, abs=1e-9)


def test_normalized_aopc_bins_that_share_a_k_count_twice(linear_task):
    """Bins 10% and 25% of F = 4 both give k = 1 (⌈0.4⌉ = ⌈1.0⌉ = 1), 50% gives k = 2: the AOPC is
    (2·drop(top-1) + drop(top-2)) / 3, so the best chain weighs its first removal twice. By hand over
    every removal order of 'great fine the bad' (logit 2): brute force, not the beam search."""
    from itertools import permutations

    from xbench.metrics.base import k_of

    ex = linear_task.examples[0]
    words = ex.features
    bins = [0.1, 0.25, 0.5]
    ks = [k_of(b, 4) for b in bins]
    assert ks == [1, 1, 2]

    def aopc(order):
        return np.mean([s(2) - s(2 - sum(WEIGHTS[words[f]] for f in order[:k])) for k in ks])

    values = [aopc(o) for o in permutations(range(4))]
    hi, lo = max(values), min(values)
    m = M("comprehensiveness_normalized")(bins=bins, beam=4)
    attrs = [2.0, 0.0, 1.0, -1.0]  # great first, then the, then fine
    order = list(np.argsort(-np.array(attrs), kind="stable"))
    v, _ = score(linear_task, m, [attrs])
    assert v[0] == pytest.approx((aopc(order) - lo) / (hi - lo), abs=1e-6)  # float32 model outputs


def test_faithfulness_correlation_removes_subsets_of_the_stated_size(linear_task):
    """|S| = ⌈s·F⌉ features per sample, n_samples samples (F = 4, s = 0.5: 2 of 4; s = 0.2: 1)."""
    from helpers import fixed_explanations
    from xbench.metrics.base import Context

    for s_size, k in ((0.5, 2), (0.2, 1), (0.75, 3)):
        m = M("faithfulness_correlation")(subset_size=s_size, n_samples=10)
        ctx = Context(linear_task, fixed_explanations(linear_task, [W_A]), np.array([1]), linear_task.engine())
        removed = m.subsets(ctx, 0)
        assert removed.shape == (10, 4) and (removed.sum(1) == k).all()
        # seeded per (task, explainer, metric, example, run seed): another seed, other subsets
        ctx2 = Context(linear_task, fixed_explanations(linear_task, [W_A]), np.array([1]), linear_task.engine(), seed=1)
        assert not np.array_equal(removed, m.subsets(ctx2, 0))
