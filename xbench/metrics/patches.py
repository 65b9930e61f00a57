"""Patch deletion and insertion curves for images (Petsiuk et al. 2018, over patches).

The pixel curves (``deletion_auc``, ``insertion_auc``) remove pixels one share at a time. These
remove square patches instead: each ``patch`` x ``patch`` cell of the grid (``patch: auto`` = image
side / 8, :mod:`xbench.features.image`) gets the sum of its pixels' attributions, cells are ranked by
that sum (ties broken by a permutation seeded per task, explainer, example and seed), and the k_j
highest cells are removed (deletion) or kept alone (insertion) by the task's replacement, for
k_j = ⌈j·G/S⌉, j = 0..S (G cells; S = ``steps``, default every cell: S = G). The keep-masks over
pixels go through the shared engine like every other metric's. The value is the trapezoidal area
under p_j, the target's probability, against x_j = k_j / G.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import trapezoid

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.features.image import check_image_params, image_groups
from xbench.metrics.base import Context, Metric


class _PatchCurve(Metric):
    family = "faithfulness"
    modalities = frozenset({"image"})
    range = (0.0, 1.0)
    params = {"patch": "auto", "steps": None}
    param_types = {"patch": (str, int)}  # "auto" or a side in pixels
    insertion = False

    def __init__(self, **params) -> None:
        super().__init__(**params)
        s = self.p["steps"]
        if s is not None and (isinstance(s, bool) or not isinstance(s, int) or s < 1):
            raise XBenchError(f"metric {self.name!r}: parameter 'steps' must be an integer >= 1 or null, got {s!r}")
        check_image_params({"patch": self.p["patch"]}, f"metric {self.name!r}")

    def groups(self, ctx: Context, i: int) -> np.ndarray:
        return image_groups(ctx.task.examples[i], self.p["patch"], "grid", f"metric {self.name!r}")

    def ks(self, n_groups: int) -> np.ndarray:
        """k_0 = 0, then k_j = ⌈j·G/S⌉ for j = 1..S (S capped at G)."""
        s = min(int(self.p["steps"] or n_groups), n_groups)
        return -(-np.arange(s + 1) * n_groups // s)

    def top_masks(self, ctx: Context, i: int) -> tuple[np.ndarray, int]:
        """((S + 1, F) bool: the pixels of the top k_j patches in row j, number of patches G)."""
        ex = ctx.task.examples[i]
        groups = self.groups(ctx, i)
        G = int(groups.max()) + 1
        score = np.bincount(groups, weights=ctx.expl.attributions[i], minlength=G)
        tie = np_rng(ctx.task.name, ctx.expl.explainer, "patch_order", ex.id, ctx.seed).permutation(G)
        rank = np.empty(G, dtype=np.int64)
        rank[np.lexsort((tie, -score))] = np.arange(G)
        return rank[groups][None, :] < self.ks(G)[:, None], G

    def plan_one(self, ctx: Context, i: int):
        top, _ = self.top_masks(ctx, i)
        return ctx.engine.submit(ctx.task.examples[i], top if self.insertion else ~top)

    def score_one(self, ctx: Context, i: int, handles) -> float:
        G = int(self.groups(ctx, i).max()) + 1
        p = self.curves[i] = ctx.p_target(i, handles)
        return float(trapezoid(p, self.ks(G) / G))


class PatchDeletionAUC(_PatchCurve):
    """Patch deletion AUC (Petsiuk et al. 2018, over square patches): area under p as the patches with
    the highest summed attribution are removed, one at a time by default. Images only."""

    name = "patch_deletion_auc"
    direction, ideal = "lower", 0.0
    formula = ("Σ_j (x_j − x_{j−1})(p_j + p_{j−1})/2,  p_j = p(x \\ top_{k_j} patches), patch score = Σ of its "
               "pixels' a,  k_j = ⌈j·G/S⌉,  x_j = k_j/G  (G patches, S = G by default)")


class PatchInsertionAUC(_PatchCurve):
    """Patch insertion AUC (Petsiuk et al. 2018, over square patches): area under p as the patches with
    the highest summed attribution are added to the empty (all-replaced) image. Images only."""

    name = "patch_insertion_auc"
    direction, ideal = "higher", 1.0
    insertion = True
    formula = "the same area with p_j = p(top_{k_j} patches only), from the empty image to the full one"
