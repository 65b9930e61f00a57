"""Every metric against values computed by hand on the linear bag-of-words model.

Example 'a' is "great fine the bad" with class-1 weights (2, 1, 0, -1); the class-0 logit is
0, so p = σ(logit_1) and the full input has p = σ(2). [MASK] has weight 0.
"""
import numpy as np
import pytest

from helpers import score
from helpers import sigmoid as s
from xbench.metrics.base import Metric, k_of
from xbench.metrics.plausibility import iou, spans

M = Metric.registry.get
ATTR_A = [4.0, 3.0, 2.0, 1.0]  # ranks great > fine > the > bad


def test_k_of_rounds_up_and_clamps():
    assert k_of(0.01, 4) == 1  # at least one
    assert k_of(0.5, 5) == 3   # ceil(2.5)
    assert k_of(0.2, 15) == 3  # 0.2*15 = 3.0000000000000004 in floats: still 3
    assert k_of(1.0, 7) == 7


def test_comprehensiveness_by_hand(linear_task):
    v, err = score(linear_task, M("comprehensiveness")(bins=[0.25, 0.5]), [ATTR_A])
    # full logit 2 + 1 + 0 - 1 = 2; remove great -> 0; remove great, fine -> -1
    expected = np.mean([s(2) - s(0), s(2) - s(-1)])
    assert err == [None]
    assert v[0] == pytest.approx(expected, abs=1e-6)
    assert v[0] == pytest.approx(0.5, abs=0.01)  # 0.4963: (0.3808 + 0.6119) / 2


def test_comprehensiveness_default_bins(linear_task):
    # F = 4: bins 1,5,10,20% -> k = 1; 50% -> k = 2
    v, _ = score(linear_task, M("comprehensiveness")(), [ATTR_A])
    assert v[0] == pytest.approx((4 * (s(2) - s(0)) + (s(2) - s(-1))) / 5, abs=1e-6)


def test_sufficiency_by_hand(linear_task):
    v, _ = score(linear_task, M("sufficiency")(bins=[0.25, 0.5]), [ATTR_A])
    # keep only great -> logit 2; keep great, fine -> logit 3
    assert v[0] == pytest.approx(np.mean([s(2) - s(2), s(2) - s(3)]), abs=1e-6)


def test_reversed_ranking_is_worse(linear_task):
    good, _ = score(linear_task, M("comprehensiveness")(), [ATTR_A])
    bad, _ = score(linear_task, M("comprehensiveness")(), [ATTR_A[::-1]])
    assert good[0] > 0 > bad[0]  # removing 'bad' first raises p


def test_deletion_auc_by_hand(linear_task):
    v, _ = score(linear_task, M("deletion_auc")(steps=4), [ATTR_A])
    p = [s(2), s(0), s(-1), s(-1), s(0)]  # remove great, fine, the, bad in turn
    expected = sum(0.25 * (p[j] + p[j + 1]) / 2 for j in range(4))
    assert v[0] == pytest.approx(expected, abs=1e-6)


def test_insertion_auc_by_hand(linear_task):
    v, _ = score(linear_task, M("insertion_auc")(steps=4), [ATTR_A])
    p = [s(0), s(2), s(3), s(3), s(2)]  # from all-[MASK], insert great, fine, the, bad
    expected = sum(0.25 * (p[j] + p[j + 1]) / 2 for j in range(4))
    assert v[0] == pytest.approx(expected, abs=1e-6)


def test_curve_with_uneven_steps_uses_true_fractions(linear_task):
    # F = 4, steps = 3: k = 0, ceil(4/3)=2, ceil(8/3)=3, 4 -> x = 0, .5, .75, 1
    v, _ = score(linear_task, M("deletion_auc")(steps=3), [ATTR_A])
    x, p = [0, 0.5, 0.75, 1.0], [s(2), s(-1), s(-1), s(0)]
    assert v[0] == pytest.approx(sum((x[j + 1] - x[j]) * (p[j] + p[j + 1]) / 2 for j in range(3)), abs=1e-6)


def test_target_class_is_respected(linear_task):
    v, _ = score(linear_task, M("comprehensiveness")(bins=[0.25]), [ATTR_A], targets=[0])
    # p_0 = 1 - p_1: removing great raises p_0 from 1-σ(2) to 1-σ(0)
    assert v[0] == pytest.approx((1 - s(2)) - (1 - s(0)), abs=1e-6)


def test_token_f1_by_hand(linear_task):
    # gold of 'a' = {great, fine}; top-2 of these scores = {fine, the}
    v, _ = score(linear_task, M("token_f1")(), [[0.1, 0.9, 0.5, 0.2]])
    assert v[0] == pytest.approx(0.5)
    v, _ = score(linear_task, M("token_f1")(), [ATTR_A])
    assert v[0] == pytest.approx(1.0)


def test_span_helpers():
    assert spans(np.array([5, 1, 2])) == [(1, 3), (5, 6)]
    assert spans(np.array([], dtype=int)) == []
    assert iou((1, 3), (1, 4)) == pytest.approx(2 / 3)
    assert iou((0, 1), (2, 3)) == 0.0


def test_iou_f1_by_hand(linear_task):
    # gold span (0,2); prediction {fine, the} = span (1,3): IOU 1/3 < 0.5 -> F1 0
    v, _ = score(linear_task, M("iou_f1")(), [[0.1, 0.9, 0.5, 0.2]])
    assert v[0] == 0.0
    # prediction {great, fine} = the gold span exactly
    v, _ = score(linear_task, M("iou_f1")(), [ATTR_A])
    assert v[0] == 1.0
    # threshold 0.3 lets IOU 1/3 match: P = R = 1
    v, _ = score(linear_task, M("iou_f1")(threshold=0.3), [[0.1, 0.9, 0.5, 0.2]])
    assert v[0] == 1.0


def test_iou_f1_two_predicted_spans(linear_task):
    # example 'd' = fine film bad great the, gold {fine, great} = spans (0,1), (3,4);
    # top-2 = {fine, film} -> one span (0,2): IOU with (0,1) = 1/2 -> matches; P = 1, R = 1/2
    ex_d = [0.9, 0.8, 0.1, 0.2, 0.0]
    task = linear_task
    task.examples = [task.examples[3]]
    v, _ = score(task, M("iou_f1")(), [ex_d])
    assert v[0] == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_average_precision_and_auprc_by_hand(linear_task):
    # gold of 'a' = [1,1,0,0]; scores rank fine(1), great(1), the, bad -> AP = AUPRC = 1
    for name in ("average_precision", "auprc"):
        v, _ = score(linear_task, M(name)(), [[3.0, 4.0, 1.0, 0.5]])
        assert v[0] == pytest.approx(1.0)
    # rank great(1), the(0), fine(1), bad(0): precision-recall points (0, 1), (½, 1), (½, ½), (1, ⅔), (1, ½)
    v, _ = score(linear_task, M("average_precision")(), [[4.0, 2.0, 3.0, 1.0]])
    assert v[0] == pytest.approx((1 + 2 / 3) / 2)  # Σ ΔR · P, step-wise
    v, _ = score(linear_task, M("auprc")(), [[4.0, 2.0, 3.0, 1.0]])
    assert v[0] == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (1 / 2 + 2 / 3) / 2)  # ERASER: trapezoids


def test_ties_are_broken_randomly_but_reproducibly(linear_task):
    flat = [[1.0, 1.0, 1.0, 1.0]]
    a, _ = score(linear_task, M("token_f1")(), flat)
    b, _ = score(linear_task, M("token_f1")(), flat)
    assert a[0] == b[0]  # same seed, same order
    # over many seeds a constant explainer averages to the random-level F1 (|G|/F = 0.5)
    from xbench.metrics.base import Context
    from helpers import fixed_explanations

    eng = linear_task.engine()
    vals = []
    for seed in range(200):
        ctx = Context(linear_task, fixed_explanations(linear_task, flat), np.array([1]), eng, seed=seed)
        eng.run()  # the predictions decide which examples plausibility scores (correct ones by default)
        vals.append(M("token_f1")().score(ctx, [None])[0][0])
    assert 0.4 < np.mean(vals) < 0.6


@pytest.mark.parametrize("name", [m.name for m in Metric.registry])
def test_metric_metadata_is_complete(name):
    cls = Metric.registry.get(name)
    assert cls.family and cls.direction in ("higher", "lower")
    lo, hi = cls.range
    assert lo <= cls.ideal <= hi
    assert cls.formula and cls.__doc__


def test_average_precision_matches_sklearn():
    from sklearn.metrics import average_precision_score

    from xbench.metrics.plausibility import average_precision

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 30))
        gold = rng.random(n) < 0.3
        gold[rng.integers(n)] = True
        scores = rng.integers(0, 5, n).astype(float) if rng.random() < 0.5 else rng.normal(size=n)  # ties, or not
        assert average_precision(gold, scores) == pytest.approx(average_precision_score(gold, scores), abs=1e-12)


def test_cost_metrics_report_the_measured_cost(linear_task):
    from helpers import fixed_explanations
    from xbench.metrics.base import Context

    expl = fixed_explanations(linear_task, [[1.0] * ex.n_features for ex in linear_task.examples])
    expl.seconds, expl.forward, expl.backward = np.array([.5, .25, 1., 2.]), np.array([3, 4, 5, 6]), np.arange(4)
    expl.memory = np.array([1.5, 0.0, 2.25, 64.0])
    ctx = Context(linear_task, expl, np.ones(4, dtype=int), linear_task.engine())
    for name, want in (("seconds", expl.seconds), ("forward_passes", expl.forward), ("backward_passes", expl.backward),
                       ("peak_memory", expl.memory)):
        values, errors = M(name)().score(ctx, [None] * 4)
        np.testing.assert_array_equal(values, want)
        assert errors == [None] * 4
    # not measured (attributions cached by an older xbench): a failure with a reason, never a made-up 0
    expl.memory = np.array([1.0, np.nan, 2.0, 3.0])
    values, errors = M("peak_memory")().score(ctx, [None] * 4)
    assert np.isnan(values[1]) and errors[1] == "metric value is not finite" and errors[0] is None


def test_explanations_measure_peak_memory_per_example(linear_task, tmp_path):
    """The explain loop fills ``memory`` per example (here on the CPU: VmHWM growth), and an attribution
    file written before memory was measured loads with NaN, not zeros."""
    from xbench.explainers.base import Explainer, Explanations

    expl = Explainer.registry.get("occlusion")().explain(linear_task, linear_task.examples, [1] * 4)
    assert expl.memory.shape == (4,) and (np.all(np.isnan(expl.memory)) or np.all(expl.memory >= 0))
    old = tmp_path / "old.npz"  # the layout of an attribution file from before peak memory
    np.savez(old, lengths=np.array([len(a) for a in expl.attributions]), flat=np.concatenate(expl.attributions),
             seconds=expl.seconds, forward=expl.forward, backward=expl.backward,
             ids=np.array(expl.example_ids, dtype=str))
    back = Explanations.load(old, "occlusion", {}, {})
    assert np.all(np.isnan(back.memory)) and [list(a) for a in back.attributions] == [list(a) for a in expl.attributions]
