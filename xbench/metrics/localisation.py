"""Localisation: does the explanation point at the gold region G (0/1 over features)?

The four metrics of Quantus's localisation family that need only G and the attributions a
(``quantus.metrics.localisation``), for any modality whose examples carry a gold rationale:
pixels of an image's gold mask, columns of a tabular row, tokens of a text. Each is a few
numpy lines over one example; they are written here rather than called because Quantus's entry
point wants one dense batch of equal-shaped images (ours are ragged across text examples) and
costs seconds to import. Where xbench differs from Quantus it is said in the metric's docstring:

- ties among the highest attributions are broken by :meth:`Context.order`'s seeded permutation
  (shared with every other metric), where Quantus's pointing game counts a hit if *any* tied
  maximum lies in G (so a constant map always hits) and its rankings use ``np.argsort``'s order;
- Quantus normalises each map by its maximum absolute value first (``normalise=True``); none of
  these four values changes under that positive rescaling, so xbench skips it.
"""
from __future__ import annotations

import numpy as np

from xbench.core.errors import XBenchError
from xbench.metrics.base import Context, k_of
from xbench.metrics.plausibility import _Plausibility

RELEVANCE = ("positive", "abs", "signed")


class _Localisation(_Plausibility):
    """Agreement with the gold mask, under the localisation literature's names (images first)."""

    family = "localisation"


class PointingGame(_Localisation):
    """Pointing game (Zhang et al. 2018, 'Top-down neural attention by excitation backprop'; Quantus
    ``PointingGame``): 1 if the highest-attributed feature lies in G, else 0; the mean over examples
    is the hit rate. Ties for the maximum are broken by the shared seeded permutation (Quantus: a hit
    if any tied maximum is in G). ``tolerance`` (images only, pixels; Zhang et al. use 15 on 224x224
    images, Quantus 0) counts a hit within that Euclidean distance of G."""

    name = "pointing_game"
    params = {"tolerance": 0}
    param_types = {"tolerance": (int, float)}
    formula = "1[argmax_i a_i ∈ G]  (ties broken by the shared seeded permutation)"

    def score_one(self, ctx: Context, i: int, state) -> float:
        g = self.gold(ctx, i)
        tol = float(self.p["tolerance"])
        if tol > 0:
            ex = ctx.task.examples[i]
            if getattr(getattr(ex, "x", None), "ndim", 0) != 3 or hasattr(ex, "parts"):
                raise XBenchError("metric 'pointing_game': parameter 'tolerance' applies to image tasks only (pixel features)")
            from scipy.ndimage import distance_transform_edt

            h, w = ex.x.shape[-2:]
            g = (distance_transform_edt(~g.reshape(h, w)) <= tol).reshape(-1)
        return float(g[self.order(ctx, i)[0]])


class RelevanceMassAccuracy(_Localisation):
    """Relevance mass accuracy (Arras et al. 2022, 'CLEVR-XAI'; Quantus ``RelevanceMassAccuracy``): the
    share of the attribution mass that lies in G, Σ_{i∈G} r_i / Σ_i r_i. ``relevance`` says what r
    is: ``positive`` (default; r = max(a, 0), Arras et al.'s 'sum,pos' pooling: negative relevance is
    evidence against the class, not mass to place), ``abs`` (r = |a|) or ``signed`` (r = a, Quantus's
    default, unbounded when a has both signs). An example with Σ r = 0 (e.g. no positive attribution
    anywhere) places no mass on G and scores 0; the run's notes count such examples. (An all-zero
    attribution is still a failure: there is nothing to measure.)"""

    name = "relevance_mass_accuracy"
    params = {"relevance": "positive"}
    formula = "Σ_{i∈G} r_i / Σ_i r_i,  r = max(a, 0); 0 if Σ_i r_i = 0  (relevance: abs → |a|, signed → a)"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        if self.p["relevance"] not in RELEVANCE:
            raise XBenchError(f"metric {self.name!r}: parameter 'relevance' must be one of "
                              f"{', '.join(RELEVANCE)}, got {self.p['relevance']!r}")
        if self.p["relevance"] == "signed":
            self.range = (-np.inf, np.inf)

    def relevance(self, a: np.ndarray) -> np.ndarray:
        how = self.p["relevance"]
        return np.maximum(a, 0.0) if how == "positive" else np.abs(a) if how == "abs" else a

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        out, empty = [], 0
        for i in idx:
            r = self.relevance(np.asarray(self.attr(ctx, i), dtype=np.float64))
            total = r.sum()
            empty += total == 0
            out.append(0.0 if total == 0 else float(r[self.gold(ctx, i)].sum() / total))
        self.notes = {"examples_without_relevance_mass": int(empty)}
        return np.array(out)


class RelevanceRankAccuracy(_Localisation):
    """Relevance rank accuracy (Arras et al. 2022; Quantus ``RelevanceRankAccuracy``): the share of the
    |G| highest-attributed features that lie in G, |top_{|G|} ∩ G| / |G|. The same number as
    ``token_f1`` (DeYoung et al.'s token F1 at k = |G|), under its localisation name; ties broken by the
    shared seeded permutation."""

    name = "relevance_rank_accuracy"
    formula = "|top_K ∩ G| / K,  K = |G|"

    def score_one(self, ctx: Context, i: int, state) -> float:
        return float(self.gold(ctx, i)[self.topk(ctx, i)].mean())


class TopKIntersection(_Localisation):
    """Top-k intersection (Theiner et al. 2021, 'Interpretable semantic photo geolocalization'; Quantus
    ``TopKIntersection``): the share of the k highest-attributed features that lie in G,
    |top_k ∩ G| / k. ``k`` is a count (an integer >= 1) or a share of the features (a number in
    (0, 1), k = ⌈k·F⌉); the default 0.02 is Quantus's k = 1000 pixels on 224x224 images, 2% of them.
    k larger than F is an error, as in Quantus. Ties broken by the shared seeded permutation."""

    name = "top_k_intersection"
    params = {"k": 0.02}
    formula = "|top_k ∩ G| / k,  k = ⌈0.02·F⌉ (or a given count)"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        k = self.p["k"]
        ok = not isinstance(k, bool) and ((isinstance(k, int) and k >= 1) or (isinstance(k, float) and 0 < k < 1))
        if not ok:
            raise XBenchError(f"metric {self.name!r}: parameter 'k' must be an integer >= 1 or a share in (0, 1), "
                              f"got {k!r}")

    def k(self, n_features: int) -> int:
        k = self.p["k"]
        return k_of(k, n_features) if isinstance(k, float) else int(k)

    def why_not(self, ctx: Context, i: int) -> str | None:
        why = super().why_not(ctx, i)
        F = int(ctx.in_part(i, self.part).sum())
        if why is None and self.k(F) > F:
            return f"k = {self.k(F)} is larger than the number of features ({F})"
        return why

    def score_one(self, ctx: Context, i: int, state) -> float:
        g = self.gold(ctx, i)
        return float(g[self.order(ctx, i)[:self.k(len(g))]].mean())
