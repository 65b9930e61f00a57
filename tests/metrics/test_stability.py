"""Stability metrics against values computed by hand on the linear bag-of-words model.

The model's logit for class c is Σ_j E[id_j, c] over the tokens (E = the 2-wide embedding
matrix), so for input x gradient, occlusion and IG the attribution of token j for target t is
exactly E[id_j, t]. Under embedding noise E' = E + n on the example's rows, a(x') = E'[ids, t]:
every sensitivity can be computed from the noise alone, which the tests redraw from the
documented generator.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch

from helpers import run_metric

import xbench.metrics.stability as st  # registers the stability metrics
from helpers import fixed_explanations
from xbench.explainers.base import Explainer
from xbench.metrics.base import Context, Metric
from xbench.features.embedding_noise import embedding_noise, noisy_rows, weight
from xbench.core.seeding import torch_gen
from xbench.features.text import TextExample
from xbench.tasks.task import load_task

M = Metric.registry.get
E = Explainer.registry.get
CLS, SEP, MASK, UNK = 2, 3, 4, 1  # the test tokenizer's special ids


class Scripted(Explainer):
    """A stochastic explainer that returns the given vectors in turn (not registered: no name in the body)."""

    stochastic = True

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.seeds = iter(outputs), []

    def attribute(self, inputs, seed):
        self.seeds.append(seed)
        return np.asarray(next(self.outputs), dtype=np.float64)


class Position(Explainer):
    """Deterministic: feature m scores m (its place in reading order). Not registered."""

    def attribute(self, inputs, seed):
        return np.arange(inputs.example.n_features, dtype=np.float64)


Scripted.name, Position.name = "scripted", "position"


def run(task, metric, explainer, targets=None, seed=0, attrs=None):
    """(values, errors, metric) of ``metric`` for ``explainer`` on all of ``task``'s examples."""
    expl = fixed_explanations(task, attrs) if attrs is not None else None
    values, errors, _ = run_metric(task, metric, explainer, targets, seed, expl)
    return values, errors, metric


def linear_with_bias(spec, bias):
    return load_task(replace(spec, model=replace(spec.model, params={"bias": bias})))


# --- Spearman convention --------------------------------------------------------------------------

def test_spearman_by_hand():
    assert st.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert st.spearman([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(1 - 6 * 2 / (4 * 15))  # 0.8
    assert st.spearman([1, 1, 1], [2, 2, 2]) == 1.0   # identical (all-tied) rankings
    assert st.spearman([5.0], [7.0]) == 1.0            # one feature
    assert np.isnan(st.spearman([1, 1, 1], [1, 2, 3]))  # undefined: stays NaN


def test_mean_pairwise_spearman_is_the_mean_over_pairs():
    from itertools import combinations

    rng = np.random.default_rng(0)
    for _ in range(200):
        runs = rng.integers(0, 3, (int(rng.integers(2, 6)), int(rng.integers(1, 7)))).astype(float)
        if rng.random() < 0.3:
            runs[1] = runs[0]
        pairs = np.mean([st.spearman(runs[r], runs[s]) for r, s in combinations(range(len(runs)), 2)])
        got = st.mean_pairwise_spearman(runs)
        assert (np.isnan(got) and np.isnan(pairs)) or got == pytest.approx(pairs, abs=1e-12)


# --- explainer seed stability ---------------------------------------------------------------------

def test_seed_stability_applies_to_stochastic_explainers_only(linear_task):
    m = M("explainer_seed_stability")()
    assert not m.applies_to(linear_task, E("occlusion")())
    assert not m.applies_to(linear_task, E("input_x_gradient")())
    assert m.applies_to(linear_task, E("random")())
    assert m.applies_to(linear_task, E("lime")())


def test_seed_stability_by_hand(linear_task):
    linear_task.examples = linear_task.examples[:1]
    ex = Scripted([[4, 3, 2, 1], [1, 2, 4, 3]])
    v, err, _ = run(linear_task, M("explainer_seed_stability")(n_seeds=2), ex, attrs=[[1, 2, 3, 4]])
    # ρ(r0, r1) = -1, ρ(r0, r2) = 0.8, ρ(r1, r2) = -0.8
    assert err == [None]
    assert v[0] == pytest.approx((-1 + 0.8 - 0.8) / 3)
    assert len(set(ex.seeds)) == 2  # each re-run drew its own seed


def test_seed_stability_of_random_is_about_zero_and_of_a_seed_free_output_is_one(linear_task):
    v, _, _ = run(linear_task, M("explainer_seed_stability")(n_seeds=30), E("random")())
    assert abs(v.mean()) < 0.1
    # SmoothGrad of a model linear in its embeddings: the noise does not change the gradient
    v, _, _ = run(linear_task, M("explainer_seed_stability")(), E("smoothgrad")(nt_samples=4))
    assert np.all(v == 1.0)


# --- the embedding-noise context manager ---------------------------------------------------------

def test_noisy_rows_skip_special_and_replacement_tokens(linear_task):
    model = linear_task.model
    assert noisy_rows(model, linear_task.examples[0]).tolist() == [5, 7, 8, 10]  # bad fine great the
    # a literal [MASK] and [UNK] inside the text are features, but their rows stay fixed
    ex = TextExample("x", np.array([CLS, MASK, 8, UNK, SEP]), np.array([-1, 0, 1, 2, -1]), 1, ["m", "great", "u"])
    assert noisy_rows(model, ex).tolist() == [8]


def test_embedding_noise_is_restored_bit_for_bit_even_on_error(linear_task):
    model = linear_task.model
    w = weight(model)
    before = w.detach().clone()
    rows = noisy_rows(model, linear_task.examples[0])
    noise = torch.full((len(rows), 2), 0.25, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="boom"):
        with embedding_noise(model, rows, noise):
            changed = np.flatnonzero((w != before).any(1).numpy())
            assert changed.tolist() == rows.tolist()
            assert torch.equal(w[rows], before[rows] + 0.25)
            raise RuntimeError("boom")
    assert torch.equal(w, before)
    noise = torch.rand((len(rows), 2), generator=torch_gen("t"), dtype=torch.float64) * 1e-3
    with embedding_noise(model, rows, noise):
        pass
    assert torch.equal(w, before)


def test_every_explainer_sees_the_noise(linear_task):
    ex = linear_task.examples[0]  # great fine the bad
    rows = noisy_rows(linear_task.model, ex)
    noise = torch.zeros((len(rows), 2), dtype=torch.float64)
    noise[:, 1] = torch.tensor([0.5, 0.25, -0.5, 0.125], dtype=torch.float64)  # bad fine great the
    with embedding_noise(linear_task.model, rows, noise):
        for name in ("input_x_gradient", "occlusion"):
            a = E(name)().explain(linear_task, [ex], [1]).attributions[0]
            np.testing.assert_allclose(a, [2 - 0.5, 1 + 0.25, 0 + 0.125, -1 + 0.5], atol=1e-6)


# --- sensitivity and relative stability by hand ---------------------------------------------------

def noisy_weights(task, ex, s, seed, radius):
    """E' for sample s, redrawn as documented in xbench.features.embedding_noise."""
    w = weight(task.model).detach().clone()
    rows = torch.tensor([5, 7, 8, 10, 6, 9])  # every non-special word of the test vocabulary ...
    rows = rows[torch.isin(rows, torch.from_numpy(ex.input_ids))].sort().values  # ... that ex contains
    e = w[torch.from_numpy(ex.input_ids)]
    r = radius * float(e.max() - e.min())
    u = torch.rand((len(rows), 2), generator=torch_gen(task.name, "embedding_noise", ex.id, s, seed),
                   dtype=torch.float64)
    w[rows] = w[rows] + (u * (2 * r) - r).float()
    return w.double().numpy()


def by_hand(task, i, radius, n, seed=0, target=1):
    """Per kept sample: (a, a', x, x', h, h') on the linear model."""
    ex = task.examples[i]
    cols = ex.input_ids[ex.feature_ids >= 0]
    w0 = weight(task.model).detach().double().numpy()
    a, x = w0[cols, target], w0[ex.input_ids]
    h = x.sum(0)
    out = []
    for s in range(n):
        w1 = noisy_weights(task, ex, s, seed, radius)
        x1 = w1[ex.input_ids]
        h1 = x1.sum(0)
        if h1.argmax() == h.argmax():
            out.append((a, w1[cols, target], x, x1, h, h1))
    return out


@pytest.mark.parametrize("explainer", ["input_x_gradient", "occlusion"])
@pytest.mark.parametrize("radius", [0.1, 1.0])
def test_sensitivity_by_hand(linear_task, explainer, radius):
    linear_task.examples = linear_task.examples[:1]  # a: great fine the bad, logits (0, 2)
    n = 8
    kept = by_hand(linear_task, 0, radius, n)
    ratios = [np.linalg.norm(a1 - a) / np.linalg.norm(a) for a, a1, *_ in kept]
    if radius == 1.0:
        assert 0 < len(kept) < n  # r = 3: some samples flip the prediction, and are left out
    else:
        assert len(kept) == n
    for name, expected in (("max_sensitivity", max(ratios)), ("avg_sensitivity", np.mean(ratios))):
        v, err, m = run(linear_task, M(name)(radius=radius, n_samples=n), E(explainer)())
        assert err == [None]
        assert v[0] == pytest.approx(expected, rel=1e-5)
        assert m.notes == {"perturbations": n, "kept": len(kept), "share_kept": len(kept) / n}
    # each ratio is at most √F·r / ‖a‖ (|noise| ≤ r per entry), r = radius · (2 − (−1))
    assert max(ratios) <= np.sqrt(4) * radius * 3 / np.sqrt(6) + 1e-6


@pytest.mark.parametrize("explainer", ["input_x_gradient", "occlusion"])
def test_relative_stability_by_hand(linear_task, explainer):
    linear_task.examples = linear_task.examples[:2]
    eps = 1e-6

    def rel(u, v):  # ‖(u − v)/u‖₂ with eps where u = 0
        u, v = np.ravel(u), np.ravel(v)
        return np.linalg.norm((u - v) / np.where(u == 0, eps, u))

    for name, ref in (("relative_input_stability", lambda x, x1, h, h1: (x, x1)),
                      ("relative_output_stability", lambda x, x1, h, h1: (h, h1))):
        v, err, _ = run(linear_task, M(name)(radius=0.1, n_samples=4), E(explainer)())
        assert err == [None, None]
        for i in range(2):
            expected = max(rel(a, a1) / max(rel(*ref(x, x1, h, h1)), eps)
                           for a, a1, x, x1, h, h1 in by_hand(linear_task, i, 0.1, 4))
            assert v[i] == pytest.approx(expected, rel=1e-5)


def test_relative_stability_clamps_the_denominator_at_eps(monkeypatch):
    # x' = x and h' = h (no change) but a' ≠ a: the ratio is ‖(a − a')/a‖ / ε, not a division by 0
    x, h = np.ones((3, 2)), np.array([0.0, 2.0])
    monkeypatch.setattr(st, "noisy_embeddings", lambda ctx, i, radius, s: (x, x.copy()))
    runs = st.NoiseRuns(np.array([True]), h, [h.copy()], [np.array([1.5, 2.0])])
    a = np.array([1.0, 2.0])
    for name in ("relative_input_stability", "relative_output_stability"):
        assert M(name)().value(None, 0, a, runs, np.array([0])) == pytest.approx(0.5 / 1e-6)
    # zero entries divide by eps: a₁ = 0 in the numerator, h₀ = 0 in the denominator
    runs.attrs, runs.hs = [np.array([1.0, 0.5])], [np.array([1e-3, 2.0])]
    a = np.array([1.0, 0.0])
    assert M("relative_output_stability")().value(None, 0, a, runs, np.array([0])) == pytest.approx(
        (0.5 / 1e-6) / (1e-3 / 1e-6))


def test_noise_metrics_share_perturbations_are_seeded_and_leave_global_rng_alone(linear_task):
    def values(seed, name="max_sensitivity"):
        return run(linear_task, M(name)(), E("input_x_gradient")(), seed=seed)[0]

    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    a, b = values(0), values(0)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[:2], values(1)[:2])
    avg = values(0, "avg_sensitivity")
    assert np.all(avg[:2] <= a[:2]) and np.all(avg[:2] > 0)


def test_zero_attributions_fail_with_a_reason(linear_task):
    # example c, target 0: every class-0 weight is 0, so a(x) = 0 and ‖a − a'‖/‖a‖ is undefined
    v, err, _ = run(linear_task, M("max_sensitivity")(), E("input_x_gradient")(), targets=[1, 1, 0, 1])
    assert np.isnan(v[2]) and err[2] == st.ZERO_ATTR
    assert err[:2] == [None, None] and err[3] is None


# --- discrete, label-preserving edits ---------------------------------------------------------------

def all_edits(task, n=100):
    targets = np.ones(len(task.examples), dtype=int)
    ctx = Context(task, fixed_explanations(task, [np.zeros(ex.n_features) for ex in task.examples]), targets,
                  task.engine())
    return [st.edits(ctx, i, n, 0.2) for i in range(len(task.examples))]


def test_edits_keep_special_tokens_and_never_touch_the_rationale(linear_task):
    per_example = all_edits(linear_task)
    # free (non-gold) features: a {the, bad}, b {the, film, plot}, c {the, plot}, d {film, bad, the}
    assert [len(es) for es in per_example] == [1 + 2, 3 + 3, 1 + 2, 3 + 3]
    for ex, es in zip(linear_task.examples, per_example):
        gold = set(np.flatnonzero(ex.rationale))
        for e in es:
            new = e.example
            assert new.input_ids[0] == CLS and new.input_ids[-1] == SEP
            assert (new.feature_ids < 0).sum() == 2 and new.feature_ids[0] == new.feature_ids[-1] == -1
            np.testing.assert_array_equal(new.feature_ids[1:-1], np.arange(new.n_features))  # reading order
            assert gold <= set(e.old.tolist())                        # no gold feature dropped
            for m, f in enumerate(e.old):                             # everything moved consistently
                assert new.features[m] == ex.features[f]
                assert new.input_ids[1 + m] == ex.input_ids[1 + f]
                assert new.rationale[m] == ex.rationale[f]
            if e.op == "swap":
                assert new.n_features == ex.n_features
                moved = np.flatnonzero(e.old != np.arange(ex.n_features))
                assert len(moved) == 2 and not gold & set(moved.tolist())  # gold tokens keep their places
            else:
                assert new.n_features == ex.n_features - 1 and len(new.input_ids) == len(ex.input_ids) - 1
    assert [e.op for e in all_edits(linear_task, 4)[1]] == ["swap", "drop", "swap", "drop"]


def test_swap_keeps_linear_attributions_exactly_permuted(linear_task):
    # a: the first edit swaps 'the' (0) and 'bad' (−1); aligned by identity the scores are unchanged
    linear_task.examples = linear_task.examples[:1]
    for name in ("discrete_stability_spearman", "discrete_stability_topk"):
        v, err, m = run(linear_task, M(name)(n_perturbations=1), E("input_x_gradient")())
        assert err == [None] and v[0] == 1.0
        assert m.notes == {"perturbations": 1, "kept": 1, "share_kept": 1.0}
    # compared by position instead, the same attributions would give ρ = 0.8
    assert st.spearman([2, 1, 0, -1], [2, 1, -1, 0]) == pytest.approx(0.8)


def test_discrete_stability_by_hand_with_position_scores(linear_task):
    linear_task.examples = linear_task.examples[1:2]  # b: the film great plot, gold {great}
    # all 6 edits keep the (bag-of-words) prediction. With scores = positions:
    #   swap(the, film): ρ 0.8, top-1 plot = plot -> 1;  swap(the, plot): ρ -0.8, top-1 the ≠ plot -> 0
    #   swap(film, plot): ρ 0.2, top-1 film ≠ plot -> 0;  each drop: ρ 1, top-1 unchanged -> 1
    v, err, m = run(linear_task, M("discrete_stability_spearman")(n_perturbations=100), Position())
    assert err == [None] and v[0] == pytest.approx((0.8 - 0.8 + 0.2 + 3) / 6)
    assert m.notes["kept"] == 6
    v, _, _ = run(linear_task, M("discrete_stability_topk")(n_perturbations=100), Position())
    assert v[0] == pytest.approx(4 / 6)


def test_edits_that_change_the_prediction_are_left_out(linear_spec):
    task = linear_with_bias(linear_spec, -2.5)  # a: logit 2 − 2.5 < 0, predicted 0
    task.examples = task.examples[:1]
    # swap(the, bad) and drop(the) keep class 0; drop(bad) lifts the logit to 0.5: class 1, left out
    v, err, m = run(task, M("discrete_stability_spearman")(n_perturbations=100), Position())
    assert m.notes == {"perturbations": 3, "kept": 2, "share_kept": 2 / 3}
    assert v[0] == pytest.approx((0.8 + 1.0) / 2)


def test_examples_without_a_kept_edit_fail_with_a_reason(linear_spec):
    task = linear_with_bias(linear_spec, 0.5)
    task.examples = task.examples[:3]
    task.examples[0].rationale = np.ones(4, dtype=np.int8)       # a: nothing may be edited
    task.examples[2].rationale = np.array([0, 1, 1], np.int8)   # c: only 'bad' may go, which flips it
    v, err, m = run(task, M("discrete_stability_spearman")(), Position())
    assert err == [st.NO_EDIT, None, st.NONE_KEPT]
    assert np.isnan(v[0]) and np.isfinite(v[1]) and np.isnan(v[2])


def test_without_gold_the_top_attributed_features_are_protected(linear_task):
    ex = linear_task.examples[3]  # fine film bad great the
    ex.rationale = None
    ctx = Context(linear_task, fixed_explanations(linear_task, [np.zeros(4)] * 3 + [[5.0, 1, 2, 3, 4]]),
                  np.ones(4, dtype=int), linear_task.engine())
    # protect = 0.4: top ⌈0.4·5⌉ = 2 by attribution = fine, the
    assert st.protected(ctx, 3, 0.4).tolist() == [True, False, False, False, True]
    for e in st.edits(ctx, 3, 100, 0.4):
        assert {0, 4} <= set(e.old.tolist())


def test_discrete_stability_is_deterministic(linear_task):
    a = run(linear_task, M("discrete_stability_spearman")(), E("random")())[0]
    b = run(linear_task, M("discrete_stability_spearman")(), E("random")())[0]
    np.testing.assert_array_equal(a, b)


# --- through the runner -------------------------------------------------------------------------------

def test_runner_writes_no_rows_where_not_applicable_and_records_share_kept(linear_spec, tmp_path):
    import json

    import pandas as pd

    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner

    cfg = RunConfig([linear_spec], [("occlusion", {}), ("random", {})],
                    [("explainer_seed_stability", {}), ("max_sensitivity", {}), ("discrete_stability_topk", {})])
    out = Runner(cfg, tmp_path / "run", progress=False, log=lambda m: None).run()
    scores = pd.read_csv(out / "scores.csv")
    counts = scores.groupby(["explainer", "metric"]).size().to_dict()
    assert ("occlusion", "explainer_seed_stability") not in counts
    assert counts[("random", "explainer_seed_stability")] == 4
    manifest = json.loads((out / "manifest.json").read_text())
    occ = manifest["tasks"]["linear"]["explainers"]["occlusion"]
    assert occ["metrics_not_applicable"] == ["explainer_seed_stability"]
    assert occ["metric_notes"]["max_sensitivity"]["share_kept"] == 1.0
    assert occ["metric_notes"]["discrete_stability_topk"]["perturbations"] == 14


@pytest.mark.parametrize("name", ["explainer_seed_stability", "max_sensitivity", "avg_sensitivity",
                                  "relative_input_stability", "relative_output_stability",
                                  "discrete_stability_spearman", "discrete_stability_topk"])
def test_stability_metadata(name):
    cls = M(name)
    assert cls.family == "stability" and cls.formula and cls.__doc__
    assert cls.range[0] <= cls.ideal <= cls.range[1]
