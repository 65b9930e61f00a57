"""Plausibility: agreement of the attributions with the gold rationale G (0/1 over features)."""
from __future__ import annotations

import numpy as np

from xbench.metrics.base import Context, Metric


def spans(indices: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive feature indices, as half-open (start, end) spans."""
    out: list[tuple[int, int]] = []
    for j in sorted(np.asarray(indices).tolist()):  # a handful of indices: plain Python is fastest
        if out and out[-1][1] == j:
            out[-1] = (out[-1][0], j + 1)
        else:
            out.append((j, j + 1))
    return out


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


class _Plausibility(Metric):
    family = "plausibility"
    direction, ideal = "higher", 1.0
    range = (0.0, 1.0)
    needs = frozenset({"rationale"})

    def gold(self, ctx: Context, i: int) -> np.ndarray:
        """G as a boolean mask over the example's features."""
        return ctx.task.examples[i].rationale.astype(bool)

    def topk(self, ctx: Context, i: int) -> np.ndarray:
        """The hard rationale: the top-k features, with k = |G|."""
        return ctx.order(i)[:int(ctx.task.examples[i].rationale.sum())]


class TokenF1(_Plausibility):
    """Token-level F1 of the top-|G| features against G (DeYoung et al. 2020).
    With k = |G|, precision = recall, so F1 = |top_k ∩ G| / |G|."""

    name = "token_f1"
    formula = "|top_k ∩ G| / |G|,  k = |G|"

    def score_one(self, ctx: Context, i: int, state) -> float:
        g = self.gold(ctx, i)
        return float(g[self.topk(ctx, i)].sum() / g.sum())


class IOUF1(_Plausibility):
    """ERASER IOU-F1 (DeYoung et al. 2020), per example: predicted spans are the runs of the
    top-|G| features; a span matches when its IOU with a gold span is >= threshold. ERASER pools
    the match counts over the dataset (micro); xbench scores each example, then averages."""

    name = "iou_f1"
    params = {"threshold": 0.5}
    formula = ("2PR/(P+R),  P = #{pred spans with IOU ≥ 0.5 to some gold span}/#pred,  "
               "R = #{gold spans with IOU ≥ 0.5 to some pred span}/#gold")

    def score_one(self, ctx: Context, i: int, state) -> float:
        gold = spans(np.flatnonzero(ctx.task.examples[i].rationale))
        pred = spans(self.topk(ctx, i))
        t = self.p["threshold"]
        p = sum(max(iou(s, g) for g in gold) >= t for s in pred) / len(pred)
        r = sum(max(iou(s, g) for s in pred) >= t for g in gold) / len(gold)
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def average_precision(gold: np.ndarray, scores: np.ndarray) -> float:
    """Average precision, Σ_n (R_n − R_{n−1}) P_n with a threshold at each distinct score.

    The same definition and tie handling as ``sklearn.metrics.average_precision_score``
    (tests check equality), written in numpy because sklearn's input validation costs
    ~1.4 ms a call, which made AUPRC half of all metric time in a run.
    """
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], np.asarray(gold, dtype=np.float64)[order]
    last_of_tie = np.append(np.flatnonzero(np.diff(s)), len(s) - 1)
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


class AUPRC(_Plausibility):
    """Area under the precision-recall curve of the attributions against G (ERASER's soft score):
    average precision, as ``sklearn.metrics.average_precision_score`` defines it."""

    name = "auprc"
    formula = "Σ_n (R_n − R_{n−1}) P_n over thresholds at each distinct attribution value"

    def score_one(self, ctx: Context, i: int, state) -> float:
        return average_precision(ctx.task.examples[i].rationale, ctx.expl.attributions[i])
