"""Localisation metrics and patch deletion/insertion curves against values computed by hand.

The image is 4x4 (16 pixel features, row-major); the gold mask G is the top-left 2x2 patch,
pixels {0, 1, 4, 5}. The patch model is linear: class-1 logit = Σ W_PATCH·x, class 0's is 0, so
p = σ(logit), and the 2x2 patches of the all-ones image carry 2, 1, -1 and 0.5 of the logit.
"""
import numpy as np
import pytest

from helpers import score
from helpers import sigmoid as s
from helpers_images import W_PATCH, task4
from xbench.metrics.base import EMPTY_RATIONALE, Metric

M = Metric.registry.get


def attr_a() -> np.ndarray:
    """Top four: pixel 2 (0.95, outside G), 1 (0.9, in G), 5 (0.5, in G), 15 (0.1); pixel 8 is -2."""
    a = np.zeros(16)
    a[[2, 1, 5, 15, 8]] = [0.95, 0.9, 0.5, 0.1, -2.0]
    return a


def one(metric, attrs=None, task=None):
    v, err = score(task or task4(), metric, [attr_a() if attrs is None else attrs])
    return v[0], err[0]


def test_pointing_game_by_hand():
    assert one(M("pointing_game")()) == (0.0, None)  # the maximum, pixel 2, is outside G
    a = attr_a()
    a[4] = 1.0  # now the maximum is pixel 4, in G
    assert one(M("pointing_game")(), a)[0] == 1.0


def test_pointing_game_tolerance_counts_a_near_miss():
    # pixel 2 is (row 0, col 2); G's nearest pixel, (0, 1), is 1 pixel away
    assert one(M("pointing_game")(tolerance=1))[0] == 1.0
    assert one(M("pointing_game")(tolerance=0.9))[0] == 0.0


def test_pointing_game_breaks_ties_with_the_shared_order():
    task = task4()
    task.examples = task.examples[:1]
    from helpers import fixed_explanations
    from xbench.metrics.base import Context

    ctx = Context(task, fixed_explanations(task, [np.ones(16)]), np.array([1]), task.engine())
    first = ctx.order(0)[0]
    v, _ = score(task4(), M("pointing_game")(), [np.ones(16)])
    assert v[0] == float(first in (0, 1, 4, 5))


def test_relevance_mass_accuracy_by_hand():
    assert one(M("relevance_mass_accuracy")())[0] == pytest.approx(1.4 / 2.45)  # positive part
    assert one(M("relevance_mass_accuracy")(relevance="abs"))[0] == pytest.approx(1.4 / 4.45)
    assert one(M("relevance_mass_accuracy")(relevance="signed"))[0] == pytest.approx(1.4 / 0.45)  # > 1
    v, err = one(M("relevance_mass_accuracy")(), -np.abs(attr_a()) - 1)
    assert v == 0.0 and err is None  # no positive relevance anywhere: no mass on the gold region
    assert one(M("relevance_mass_accuracy")(relevance="abs"), -np.ones(16))[0] == pytest.approx(4 / 16)


def test_relevance_rank_accuracy_and_top_k_by_hand():
    assert one(M("relevance_rank_accuracy")())[0] == pytest.approx(2 / 4)  # top 4: 2, 1, 5, 15
    assert one(M("top_k_intersection")(k=2))[0] == pytest.approx(1 / 2)   # 2, 1
    assert one(M("top_k_intersection")(k=3))[0] == pytest.approx(2 / 3)   # 2, 1, 5
    assert one(M("top_k_intersection")())[0] == 0.0                       # k = ⌈0.02·16⌉ = 1: pixel 2
    assert one(M("top_k_intersection")(k=0.25))[0] == pytest.approx(2 / 4)  # k = 4
    v, err = one(M("top_k_intersection")(k=17))
    assert np.isnan(v) and "larger than the number of features" in err


def test_localisation_params_are_checked():
    from xbench.core.errors import XBenchError

    with pytest.raises(XBenchError, match="'relevance'"):
        M("relevance_mass_accuracy")(relevance="max")
    for bad in (0, 1.5, True, "5"):
        with pytest.raises(XBenchError, match="'k'"):
            M("top_k_intersection")(k=bad)


def test_localisation_needs_a_gold_rationale():
    task = task4(rationale=False)
    for name in ("pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy", "top_k_intersection"):
        assert not M(name)().applies_to(task, None)


def test_empty_gold_mask_fails_with_a_reason():
    task = task4()
    task.examples[0].rationale = np.zeros(16, dtype=np.int8)
    v, err = score(task, M("pointing_game")(), [attr_a()])
    assert np.isnan(v[0]) and err[0] == EMPTY_RATIONALE


def test_localisation_works_on_text_and_rank_accuracy_is_token_f1(linear_task):
    a = [4.0, 3.0, 2.0, 1.0]
    rra, _ = score(linear_task, M("relevance_rank_accuracy")(), [a])
    f1, _ = score(linear_task, M("token_f1")(), [a])
    assert rra[0] == f1[0]
    pg, err = score(linear_task, M("pointing_game")(), [a])
    g = linear_task.examples[0].rationale
    assert err == [None] and pg[0] == float(g[0])


# --- patch deletion / insertion ------------------------------------------------------------------

def curve(logits, x):
    p = np.array([s(z) for z in logits])
    return float(np.sum(np.diff(x) * (p[1:] + p[:-1]) / 2))


def test_patch_deletion_auc_by_hand():
    # patches by summed attribution: top-left 2, top-right 1, bottom-right 0.5, bottom-left -1
    v, err = one(M("patch_deletion_auc")(patch=2), W_PATCH.reshape(-1))
    assert err is None
    assert v == pytest.approx(curve([2.5, 0.5, -0.5, -1.0, 0.0], np.linspace(0, 1, 5)), abs=1e-6)
    v2, _ = one(M("patch_deletion_auc")(patch=2, steps=2), W_PATCH.reshape(-1))
    assert v2 == pytest.approx(curve([2.5, -0.5, 0.0], [0, 0.5, 1]), abs=1e-6)


def test_patch_insertion_auc_by_hand():
    v, _ = one(M("patch_insertion_auc")(patch=2), W_PATCH.reshape(-1))
    assert v == pytest.approx(curve([0.0, 2.0, 3.0, 3.5, 2.5], np.linspace(0, 1, 5)), abs=1e-6)
    worst, _ = one(M("patch_insertion_auc")(patch=2), -W_PATCH.reshape(-1))
    assert worst < v


def test_patch_curves_with_one_pixel_patches_are_the_pixel_curves():
    a = np.random.default_rng(0).normal(size=16)  # no ties: both orders agree
    for patch_name, pixel_name in (("patch_deletion_auc", "deletion_auc"), ("patch_insertion_auc", "insertion_auc")):
        v, _ = one(M(patch_name)(patch=1), a)
        w, _ = one(M(pixel_name)(steps=16), a)
        assert v == pytest.approx(w, abs=1e-12)


def test_patch_curves_are_image_only_and_check_params(linear_task):
    from xbench.core.errors import XBenchError

    assert not M("patch_deletion_auc")().applies_to(linear_task, None)
    assert M("patch_deletion_auc")().applies_to(task4(), None)
    with pytest.raises(XBenchError, match="'patch'"):
        M("patch_insertion_auc")(patch=0)
    with pytest.raises(XBenchError, match="'steps'"):
        M("patch_deletion_auc")(steps=0)


def test_pixel_deletion_auc_on_an_image_uses_the_tasks_baseline():
    """The signed image (second example) under replacement 'mean': removed pixels become the image's
    mean 2.5 / 16 = 0.15625. Attributions rank pixels 0..15 in order; steps = 2 removes rows 0-1, then
    everything. Logits: full Σ W·x = -0.4375; rows 0-1 removed 3.0·0.15625 - 1.1875 = -0.71875 (W sums
    to 3 there, and rows 2-3 carry -1.1875); all removed 2.5·0.15625 = 0.390625."""
    task = task4(replacement="mean")
    task.examples = task.examples[1:]
    v, err = score(task, M("deletion_auc")(steps=2), [np.arange(16.0)[::-1]])
    assert err == [None]
    assert v[0] == pytest.approx(curve([-0.4375, -0.71875, 0.390625], [0, 0.5, 1]), abs=1e-6)
    ins, _ = score(task, M("insertion_auc")(steps=2), [np.arange(16.0)[::-1]])
    # insertion: all replaced 0.390625; rows 0-1 kept: Σ_{rows 0-1} W·x + (-0.5)·0.15625 = 0.75 - 0.078125
    assert ins[0] == pytest.approx(curve([0.390625, 0.671875, -0.4375], [0, 0.5, 1]), abs=1e-6)
