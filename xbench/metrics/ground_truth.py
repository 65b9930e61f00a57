"""Ground truth: agreement of the attributions a with a known true attribution t.

Some datasets know each feature's true contribution (``DenseExample.truth``): for a linear
generator with log-odds z(x) = w·x + b, replacing x_j by the task's baseline value b_j changes
z by exactly w_j (x_j − b_j) (see :class:`xbench.data.tabular.SyntheticLinear`). The truth is
given for the log-odds of class 1 of a binary task; the explained class c gets

    t_c = t  if c = 1,   t_c = −t  if c = 0     (the log-odds of class 0 is −z),

or ``truth[c]`` when the truth is given per class, shape (C, F).

Top-k sets follow OpenXAI (Agarwal et al. 2022, "OpenXAI: Towards a Transparent Evaluation of
Model Explanations"; Krishna et al. 2022, "The Disagreement Problem in Explainable ML"):
features are ranked by absolute value, T_(r) is the feature at rank r of |t_c| and E_(r) of |a|.
Ties in |a| (e.g. an all-zero explanation) are broken by a permutation seeded per (task,
explainer, example, seed); ties in |t| by feature index (they only occur among zero-truth
features, which the default k leaves out). k defaults to the number of features with t_j ≠ 0
(the informative features of a sparse generator: the gold rationale); ``k: <int>`` fixes it
(at most F).

These metrics never call the model. They apply only to tasks whose examples carry a truth;
an example without one fails with a reason (``why_not``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xbench.core.seeding import np_rng
from xbench.metrics.base import Context, Metric

if TYPE_CHECKING:  # pragma: no cover
    from xbench.explainers.base import Explainer
    from xbench.tasks.task import Task

NO_TRUTH = "no true attribution for this example (the dataset has no ground truth)"
ZERO_TRUTH = "the true attribution is zero for every feature"
CONSTANT_TRUTH = "the true attribution is constant: correlation is undefined"


def truth_for(truth: np.ndarray, target: int, n_classes: int) -> np.ndarray:
    """The true attribution for class ``target``: −t for class 0 and t for class 1 of a binary task
    when ``truth`` is one vector (class 1's log-odds); ``truth[target]`` when it is (C, F)."""
    t = np.asarray(truth, dtype=np.float64)
    if t.ndim == 2:
        return t[target]
    if n_classes != 2:
        raise ValueError(f"a single truth vector is for binary tasks; this task has {n_classes} classes")
    return t if target == 1 else -t


def abs_order(a: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Features by decreasing |a|, ties broken by the permutation ``tie``."""
    return np.lexsort((tie, -np.abs(a)))


def truth_order(t: np.ndarray) -> np.ndarray:
    """Features by decreasing |t|, ties by feature index."""
    return np.argsort(-np.abs(t), kind="stable")


class _GroundTruth(Metric):
    family = "ground_truth"
    needs = frozenset({"truth"})

    def applies_to(self, task: "Task", explainer: "Explainer") -> bool:
        return ((self.modalities is None or task.spec.modality in self.modalities)
                and any(getattr(ex, "truth", None) is not None for ex in task.examples))

    def why_not(self, ctx: Context, i: int) -> str | None:
        base = super().why_not(ctx, i)
        if base is not None:
            return base
        truth = getattr(ctx.task.examples[i], "truth", None)
        if truth is None:
            return NO_TRUTH
        t = np.asarray(truth)
        if t.ndim == 1 and len(ctx.task.label_names) != 2:
            return (f"the true attribution is one vector (class 1's log-odds of a binary task) but the task "
                    f"has {len(ctx.task.label_names)} classes")
        if not np.any(truth_for(t, int(ctx.targets[i]), len(ctx.task.label_names))):
            return ZERO_TRUTH
        return None

    def truth(self, ctx: Context, i: int) -> np.ndarray:
        return truth_for(ctx.task.examples[i].truth, int(ctx.targets[i]), len(ctx.task.label_names))


class _TopK(_GroundTruth):
    direction, ideal = "higher", 1.0
    range = (0.0, 1.0)
    params = {"k": None}

    def k(self, t: np.ndarray) -> int:
        k = self.p["k"]
        return int(np.count_nonzero(t)) if k is None else max(1, min(int(k), len(t)))

    def orders(self, ctx: Context, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """(a, t, explanation order, true order, k)."""
        a, t = np.asarray(ctx.expl.attributions[i], dtype=np.float64), self.truth(ctx, i)
        ex = ctx.task.examples[i]
        tie = np_rng(ctx.task.name, ctx.expl.explainer, "order_abs", ex.id, ctx.seed).permutation(len(a))
        return a, t, abs_order(a, tie), truth_order(t), self.k(t)


class FeatureAgreement(_TopK):
    """OpenXAI feature agreement (FA): the share of the true top-k features (by |t|) that are
    among the explanation's top-k (by |a|). Random scores: expected k/F."""

    name = "gt_feature_agreement"
    formula = "|T_k ∩ E_k| / k,  T_k, E_k = top-k features by |t|, |a|; k = #{j: t_j ≠ 0}"

    def score_one(self, ctx: Context, i: int, state) -> float:
        _, _, e, t, k = self.orders(ctx, i)
        return len(np.intersect1d(e[:k], t[:k])) / k


class RankAgreement(_TopK):
    """OpenXAI rank agreement (RA): the share of the k top ranks at which the explanation and the
    truth put the same feature. Random scores: expected 1/F."""

    name = "gt_rank_agreement"
    formula = "(1/k) Σ_{r=1..k} 1[E_(r) = T_(r)],  rank r by |a| and by |t|"

    def score_one(self, ctx: Context, i: int, state) -> float:
        _, _, e, t, k = self.orders(ctx, i)
        return float(np.mean(e[:k] == t[:k]))


class SignAgreement(_TopK):
    """OpenXAI sign agreement (SA): the share of the true top-k features that are in the
    explanation's top-k with the sign of the truth (sign(0) = 0 matches nothing nonzero).
    Random U(0, 1) scores (all positive): expected #{j ∈ T_k: t_j > 0} / F."""

    name = "gt_sign_agreement"
    formula = "|{j ∈ T_k ∩ E_k : sign(a_j) = sign(t_j)}| / k"

    def score_one(self, ctx: Context, i: int, state) -> float:
        a, tv, e, t, k = self.orders(ctx, i)
        both = np.intersect1d(e[:k], t[:k])
        return float(np.sum(np.sign(a[both]) == np.sign(tv[both])) / k)


class TruthPearson(_GroundTruth):
    """Pearson correlation between the attributions and the true attribution, over features.

    Pearson rather than Spearman: the truth is an additive attribution on the log-odds scale, and
    an exact explainer of the explained output returns it up to a positive factor (e.g. ½ for a
    softmax over two logits, p(1 − p) for a probability): Pearson is 1 exactly then, and it
    weighs features by size, so mis-scoring a large contribution costs more than swapping two
    negligible ones (the rank metrics above already cover the order alone). It keeps the sign:
    an explanation with flipped signs scores −1. The value of ``scipy.stats.pearsonr`` (tests
    check equality), computed in numpy: pearsonr's input checks and p-value cost ~1 ms a call,
    more than all the other ground-truth metrics together.

    A constant explanation (e.g. all zero) has no linear association: scored 0 (scipy gives NaN),
    counted in the metric's notes as ``n_constant``. A constant truth fails (undefined)."""

    name = "gt_pearson"
    direction, ideal = "higher", 1.0
    range = (-1.0, 1.0)
    formula = "Pearson ρ(a, t) over the features (scipy.stats.pearsonr); constant a: 0"

    def why_not(self, ctx: Context, i: int) -> str | None:
        base = super().why_not(ctx, i)
        if base is None and np.ptp(self.truth(ctx, i)) == 0:
            return CONSTANT_TRUTH
        return base

    def score(self, ctx: Context, states: list) -> tuple[np.ndarray, list[str | None]]:
        self.notes.pop("n_constant", None)
        return super().score(ctx, states)

    def score_one(self, ctx: Context, i: int, state) -> float:
        a = np.asarray(ctx.expl.attributions[i], dtype=np.float64)
        if np.ptp(a) == 0:
            self.notes["n_constant"] = self.notes.get("n_constant", 0) + 1
            return 0.0
        return pearson(a, self.truth(ctx, i))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r = Σ (a − ā)(b − b̄) / sqrt(Σ (a − ā)² Σ (b − b̄)²), clipped to [−1, 1]; both
    vectors non-constant. Equals ``scipy.stats.pearsonr(a, b).statistic`` (tests check)."""
    da, db = a - a.mean(), b - b.mean()
    # scale first, as scipy does, so that tiny or huge attributions neither underflow nor overflow
    da, db = da / np.abs(da).max(), db / np.abs(db).max()
    return float(np.clip(da @ db / np.sqrt((da @ da) * (db @ db)), -1.0, 1.0))
