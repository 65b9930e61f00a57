"""Faithfulness: does removing what the explainer ranks highest change the prediction?

p(.) is the softmax probability of the target class; x \\ S is x with the features in
S removed by the task's replacement policy; top_k the k highest-attributed features.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import trapezoid

from . import Context, Metric, ks_of

ERASER_BINS = [0.01, 0.05, 0.10, 0.20, 0.50]


class _AOPC(Metric):
    family = "faithfulness"
    range = (-1.0, 1.0)
    params = {"bins": ERASER_BINS}
    #: False: the top-k are removed (comprehensiveness); True: only they are kept
    keep_top = False

    def plan_one(self, ctx: Context, i: int):
        ex = ctx.task.examples[i]
        top = ctx.top_masks(i, ks_of(tuple(self.p["bins"]), ex.n_features))
        return ctx.engine.submit(ex, top if self.keep_top else ~top)

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        p = ctx.p_target_rows(idx, np.stack([states[i] for i in idx]))  # (n, |B|)
        p_full = ctx.p_target_rows(idx, ctx.full[idx][:, None])          # (n, 1)
        return (p_full - p).mean(axis=1)


class Comprehensiveness(_AOPC):
    """Comprehensiveness (DeYoung et al. 2020, ERASER), as AOPC over bins B."""

    name = "comprehensiveness"
    direction, ideal = "higher", 1.0
    formula = "1/|B| Σ_{b∈B} [p(x) − p(x \\ top_{k_b})],  k_b = max(1, ⌈b·F⌉),  B = {1,5,10,20,50}%"


class Sufficiency(_AOPC):
    """Sufficiency (DeYoung et al. 2020, ERASER), as AOPC over bins B."""

    name = "sufficiency"
    direction, ideal = "lower", 0.0  # the rationale alone is as convincing as the input
    keep_top = True  # only the top-k are kept
    formula = "1/|B| Σ_{b∈B} [p(x) − p(top_{k_b} only)],  k_b = max(1, ⌈b·F⌉)"


class _Curve(Metric):
    family = "faithfulness"
    range = (0.0, 1.0)
    params = {"steps": 10}
    insertion = False

    def _ks(self, F: int) -> np.ndarray:
        """k_0 = 0, then k_j = ⌈j·F/S⌉ for j = 1..S."""
        s = int(self.p["steps"])
        return ks_of((0.0,) + tuple(j / s for j in range(1, s + 1)), F)

    def plan_one(self, ctx: Context, i: int):
        ex = ctx.task.examples[i]
        top = ctx.top_masks(i, self._ks(ex.n_features))
        return ctx.engine.submit(ex, top if self.insertion else ~top)

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        p = ctx.p_target_rows(idx, np.stack([states[i] for i in idx]))  # (n, S + 1)
        x = np.stack([self._ks(ctx.task.examples[i].n_features) / ctx.task.examples[i].n_features
                      for i in idx])
        return trapezoid(p, x, axis=1)


class DeletionAUC(_Curve):
    """Deletion AUC (Petsiuk et al. 2018): area under p as the top features are removed."""

    name = "deletion_auc"
    direction, ideal = "lower", 0.0
    formula = ("Σ_j (x_j − x_{j−1})(p_j + p_{j−1})/2,  p_j = p(x \\ top_{k_j}),  "
               "k_j = ⌈j·F/S⌉ (k_0 = 0),  x_j = k_j/F,  j = 0..S")


class InsertionAUC(_Curve):
    """Insertion AUC (Petsiuk et al. 2018): area under p as the top features are added to an empty input."""

    name = "insertion_auc"
    direction, ideal = "higher", 1.0
    insertion = True
    formula = "Σ_j (x_j − x_{j−1})(p_j + p_{j−1})/2,  p_j = p(top_{k_j} only),  k_j, x_j as for deletion"
