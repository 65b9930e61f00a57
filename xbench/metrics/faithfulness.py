"""Faithfulness: does removing what the explainer ranks highest change the prediction?

p(.) is the softmax probability of the target class; x \\ S is x with the features in
S removed by the task's replacement policy; top_k the k highest-attributed features.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import trapezoid

from . import Context, Metric, k_of

ERASER_BINS = [0.01, 0.05, 0.10, 0.20, 0.50]


class _AOPC(Metric):
    family = "faithfulness"
    range = (-1.0, 1.0)
    params = {"bins": ERASER_BINS}
    #: False: the top-k are removed (comprehensiveness); True: only they are kept
    keep_top = False

    def plan_one(self, ctx: Context, i: int):
        ex, order = ctx.task.examples[i], ctx.order(i)
        keep = np.full((len(self.p["bins"]), ex.n_features), not self.keep_top)
        for row, b in enumerate(self.p["bins"]):
            keep[row, order[:k_of(b, ex.n_features)]] = self.keep_top
        return ctx.engine.submit(ex, keep)

    def score_one(self, ctx: Context, i: int, handles) -> float:
        return float(np.mean(ctx.p_full(i) - ctx.p_target(i, handles)))


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
        s = int(self.p["steps"])
        return np.array([0] + [k_of(j / s, F) for j in range(1, s + 1)])

    def plan_one(self, ctx: Context, i: int):
        ex, order = ctx.task.examples[i], ctx.order(i)
        ks = self._ks(ex.n_features)
        keep = np.full((len(ks), ex.n_features), not self.insertion)
        for row, k in enumerate(ks):
            keep[row, order[:k]] = self.insertion
        return ctx.engine.submit(ex, keep)

    def score_one(self, ctx: Context, i: int, handles) -> float:
        x = self._ks(ctx.task.examples[i].n_features) / ctx.task.examples[i].n_features
        return float(trapezoid(ctx.p_target(i, handles), x))


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
