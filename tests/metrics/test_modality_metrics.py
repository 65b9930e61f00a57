"""Modality metrics against values computed by hand on the hand-set LinearVL (tests/helpers_vqa.py):
z = 3·Σ W-patch sums kept + 2·[red kept]; p = σ(z); patch sums per channel 1, 0, 0, 0.5."""
import numpy as np
import pytest
from scipy.integrate import trapezoid

import helpers_vqa as H
from helpers import score
from helpers import sigmoid as s
from xbench.metrics.base import Metric
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task

#: input x gradient on the all-ones example (patch 3·W sums, word u − u[MASK])
A = [3.0, 0.0, 0.0, 1.5, 0.0, 2.0, 0.0]
FULL = s(6.5)


def approx(x, abs=1e-6):
    """Outputs are float32: equal to the closed form to 1e-6."""
    return pytest.approx(x, abs=abs)


def task():
    return load_task(parse_task(dict(H.MINI_TASK), "mini.yaml"))


def value(name, attrs=(A,), **params):
    vals, errs = score(task(), Metric.registry.get(name)(**params), [np.asarray(a, float) for a in attrs])
    return vals, errs


def test_image_comprehensiveness_and_sufficiency():
    # F_I = 4: bins 1, 5, 10, 20, 50% -> k = 1, 1, 1, 1, 2; the text always kept
    v, _ = value("image_comprehensiveness")
    assert v[0] == approx((4 * (FULL - s(3.5)) + (FULL - s(2.0))) / 5)
    v, _ = value("image_sufficiency")  # keep patch 0 (z = 3 + 2), then patches 0 and 3 (z = 6.5)
    assert v[0] == approx((4 * (FULL - s(5.0)) + 0.0) / 5)


def test_text_comprehensiveness_and_sufficiency():
    # F_T = 3 -> k = 1, 1, 1, 1, 1 (⌈0.5·3⌉ = 2 at 50%); "red" first; the other words weigh nothing
    v, _ = value("text_comprehensiveness")
    assert v[0] == approx(FULL - s(4.5))
    v, _ = value("text_sufficiency")  # "red" alone with the whole image: z = 6.5
    assert v[0] == approx(0.0)


def test_image_deletion_and_insertion_curves():
    ks = np.array([int(np.ceil(j * 4 / 10 - 1e-9)) for j in range(11)])
    z_del = {0: 6.5, 1: 3.5, 2: 2.0, 3: 2.0, 4: 2.0}      # patches removed in order 0, 3, then the zero ones
    z_ins = {0: 2.0, 1: 5.0, 2: 6.5, 3: 6.5, 4: 6.5}      # from the image removed (text kept)
    v, _ = value("image_deletion_auc")
    assert v[0] == approx(trapezoid([s(z_del[k]) for k in ks], ks / 4))
    v, _ = value("image_insertion_auc")
    assert v[0] == approx(trapezoid([s(z_ins[k]) for k in ks], ks / 4))


def test_joint_metric_is_unchanged_by_the_parts():
    # joint comprehensiveness over all 7 features: k = 1, 1, 1, 2, 4 -> patch 0, then "red", then patch 3
    v, _ = value("comprehensiveness")
    want = (3 * (FULL - s(3.5)) + (FULL - s(1.5)) + (FULL - s(0.0))) / 5
    assert v[0] == approx(want)


def test_image_localisation_and_text_plausibility():
    assert value("image_pointing_game")[0][0] == 1.0
    assert value("image_pointing_game", [[0, 0, 0, 1.5, 9.0, 0, 0]])[0][0] == 0.0  # the text's 9 is not looked at
    assert value("image_relevance_mass_accuracy")[0][0] == approx(3.0 / 4.5)
    assert value("image_top_k_intersection", k=2)[0][0] == approx(0.5)  # patches 0 and 3; G = {0}
    assert value("text_token_f1")[0][0] == 1.0
    assert value("text_token_f1", [[9.0, 9.0, 9.0, 9.0, 1.0, 0.0, 0.5]])[0][0] == 0.0  # "is" first, within the text
    assert value("text_auprc", [[0, 0, 0, 0, 0.0, 2.0, 1.0]])[0][0] == approx(1.0)


def test_a_part_without_gold_is_skipped():
    t = task()
    for ex in t.examples:
        ex.rationale = ex.rationale.copy()
        ex.rationale[:4] = 0  # no gold pixels ("no" answer): the image metrics skip, the text ones score
    vals, errs = score(t, Metric.registry.get("image_pointing_game")(), [np.asarray(A)])
    assert np.isnan(vals[0]) and errs[0].startswith("skipped: no gold in the image part")
    vals, errs = score(t, Metric.registry.get("text_token_f1")(), [np.asarray(A)])
    assert vals[0] == 1.0 and errs[0] is None


def test_modality_share_gap_by_hand():
    phi_t = 0.5 * ((s(2) - s(0)) + (s(6.5) - s(4.5)))
    phi_i = 0.5 * ((s(4.5) - s(0)) + (s(6.5) - s(2)))
    t_model = abs(phi_t) / (abs(phi_t) + abs(phi_i))
    v, _ = value("modality_share_gap")
    assert v[0] == approx(abs(2.0 / 6.5 - t_model))
    # signs do not matter (MM-SHAP uses |a|); all the mass on the image: the gap is T itself
    v, _ = value("modality_share_gap", [[-3.0, 0, 0, 1.5, 0, -2.0, 0]])
    assert v[0] == approx(abs(2.0 / 6.5 - t_model))
    v, _ = value("modality_share_gap", [[1.0, 0, 0, 0, 0, 0, 0]])
    assert v[0] == approx(t_model)


def test_modality_share_gap_notes_and_curves():
    from helpers import run_metric
    from xbench.explainers.base import Explainer

    m = Metric.registry.get("modality_share_gap")()
    vals, errs, _ = run_metric(task(), m, Explainer.registry.get("input_x_gradient")())
    assert errs == [None, None]
    assert m.notes["explainer_text_share"] == approx(np.mean([2 / 6.5, 2 / 5]))
    assert m.curves[0][0] == approx(2 / 6.5)


def test_metrics_apply_to_multimodal_tasks_only():
    from helpers import LINEAR_TASK
    from xbench.explainers.base import Explainer

    lin = load_task(parse_task(dict(LINEAR_TASK), "lin.yaml"))
    rnd = Explainer.registry.get("random")()
    for name in ("modality_share_gap", "image_comprehensiveness", "text_token_f1", "image_pointing_game"):
        m = Metric.registry.get(name)()
        assert m.direction in ("higher", "lower") and m.formula
        assert not m.applies_to(lin, rnd) and m.applies_to(task(), rnd)
