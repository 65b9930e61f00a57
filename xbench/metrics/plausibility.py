"""Plausibility: agreement of the attributions with the gold rationale G (0/1 over features).

What is scored, by default (``examples: correct``): a gold rationale is the evidence for the *gold*
class, and an explanation is of the class the model predicts, so an example the model misclassifies
compares an explanation of one class with the evidence for another (a faithful method then scores
below random, a class-blind one does not). Those examples are skipped (reason ``skipped:
misclassified``, counted in ``n_skipped``, not failures); ``examples: all`` scores every example
against the predicted class's explanation, and either way the metric's notes (the run manifest)
give the mean on correctly and on wrongly classified examples and their counts.

Rationales that cover every feature are skipped too (any ranking of the features scores 1 on every
plausibility metric: they measure nothing), and counted. Examples with no or an empty rationale fail
with that reason, unless the task says such examples are expected (``missing_rationale: skip``, e.g.
the non-toxic class of a toxicity set): then they are skipped.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xbench.metrics.base import EMPTY_RATIONALE, NO_RATIONALE, SKIPPED, Context, Metric

MISCLASSIFIED = SKIPPED + "misclassified (the explanation is of another class than the gold rationale's)"
FULL_RATIONALE = SKIPPED + "the rationale covers every feature (every ranking scores the same)"
EXAMPLES = ("correct", "all")


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
    params: ClassVar[dict[str, Any]] = {"examples": "correct"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if "params" in cls.__dict__ and "examples" not in cls.params:  # every subclass has ``examples``
            cls.params = {**cls.params, "examples": "correct"}
        super().__init_subclass__(**kwargs)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.p["examples"] not in EXAMPLES:
            from xbench.core.errors import XBenchError

            raise XBenchError(f"metric {self.name!r}: parameter 'examples' must be one of {', '.join(EXAMPLES)}, "
                              f"got {self.p['examples']!r}")

    def plan(self, ctx: Context) -> list[Any]:
        """Nothing to submit: scored from the attributions and the rationale alone (which examples are
        left out is decided when scoring, once the model's predictions are in)."""
        self._failed = {}
        return [None] * ctx.n

    @staticmethod
    def correct(ctx: Context, i: int) -> bool:
        """Whether the model predicts example i's gold label (on the whole input)."""
        return int(ctx.engine.probs(ctx.full[i:i + 1])[0].argmax()) == int(ctx.task.examples[i].label)

    def why_not(self, ctx: Context, i: int) -> str | None:
        why = super().why_not(ctx, i)
        if why is None and self.part is not None and not self.gold(ctx, i).any():
            # a multimodal example whose gold lies wholly in the other modality (e.g. no object to find)
            return SKIPPED + f"no gold in the {self.part} part"
        if why in (NO_RATIONALE, EMPTY_RATIONALE):
            return SKIPPED + why if getattr(ctx.task.spec, "missing_rationale", "fail") == "skip" else why
        if why is not None:
            return why
        if self.gold(ctx, i).all():
            return FULL_RATIONALE
        if self.p["examples"] == "correct" and not self.correct(ctx, i):
            return MISCLASSIFIED
        return None

    def score(self, ctx: Context, states: list[Any]) -> tuple[np.ndarray, list[str | None]]:
        """As :meth:`Metric.score`; the notes give the split by correctness (both parts scored)."""
        values, errors = super().score(ctx, states)
        correct = [i for i, e in enumerate(errors) if e is None]
        mis = [i for i, e in enumerate(errors) if e == MISCLASSIFIED]
        if self.p["examples"] == "all":
            wrong = {i for i in correct if not self.correct(ctx, i)}
            mis, correct = sorted(wrong), [i for i in correct if i not in wrong]
            mis_values = values[mis]
        else:
            mis_values = self.score_many(ctx, mis, states) if mis else np.zeros(0)

        def mean(v: np.ndarray) -> float | None:
            v = np.asarray(v, dtype=np.float64)
            v = v[np.isfinite(v)]
            return float(v.mean()) if len(v) else None

        self.notes.update(scored_on=self.p["examples"], n_correct=len(correct), n_misclassified=len(mis),
                          mean_correct=mean(values[correct]), mean_misclassified=mean(mis_values),
                          n_full_rationale=sum(e == FULL_RATIONALE for e in errors))
        return values, errors

    def gold(self, ctx: Context, i: int) -> np.ndarray:
        """G as a boolean mask over the example's features (over the part's, for a per-modality metric)."""
        g = ctx.task.examples[i].rationale.astype(bool)
        return g if self.part is None else g[ctx.in_part(i, self.part)]

    def attr(self, ctx: Context, i: int) -> np.ndarray:
        """The attributions a (the part's, for a per-modality metric)."""
        a = ctx.expl.attributions[i]
        return a if self.part is None else np.asarray(a)[ctx.in_part(i, self.part)]

    def order(self, ctx: Context, i: int) -> np.ndarray:
        """Features by decreasing attribution (:meth:`Context.order`; within the part for a
        per-modality metric, as indices into its features)."""
        return ctx.part_order(i, self.part)

    def topk(self, ctx: Context, i: int) -> np.ndarray:
        """The hard rationale: the top-k features, with k = |G|."""
        return self.order(ctx, i)[:int(self.gold(ctx, i).sum())]


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
        gold = spans(np.flatnonzero(self.gold(ctx, i)))
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


def eraser_auprc(gold: np.ndarray, scores: np.ndarray) -> float:
    """ERASER's AUPRC: the trapezoidal area under the precision-recall curve,
    ``sklearn.metrics.auc(recall, precision)`` of ``precision_recall_curve(gold, scores)`` as the
    official scorer (``rationale_benchmark/metrics.py``) computes it per example: thresholds at each
    distinct score, the curve closed at (recall 0, precision 1). Written in numpy, as
    :func:`average_precision` is (tests check equality with sklearn)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], np.asarray(gold, dtype=np.float64)[order]
    last_of_tie = np.append(np.flatnonzero(np.diff(s)), len(s) - 1)
    tp = np.cumsum(y)[last_of_tie]
    precision = np.concatenate([[1.0], tp / (last_of_tie + 1)])
    recall = np.concatenate([[0.0], tp / tp[-1]])
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


class AveragePrecision(_Plausibility):
    """Average precision of the attributions against G, as ``sklearn.metrics.average_precision_score``
    defines it (the step-wise area: no interpolation between thresholds)."""

    name = "average_precision"
    formula = "Σ_n (R_n − R_{n−1}) P_n over thresholds at each distinct attribution value"

    def score_one(self, ctx: Context, i: int, state) -> float:
        return average_precision(self.gold(ctx, i), self.attr(ctx, i))


class AUPRC(_Plausibility):
    """ERASER's AUPRC (DeYoung et al. 2020; the official scorer's soft-rationale score): the trapezoidal
    area under the precision-recall curve of the attributions against G (:func:`eraser_auprc`). It
    interpolates linearly between thresholds, so it differs from average precision and can order
    explainers differently."""

    name = "auprc"
    formula = "Σ_n (R_n − R_{n−1}) (P_n + P_{n−1})/2 over thresholds at each distinct attribution value, from (0, 1)"

    def score_one(self, ctx: Context, i: int, state) -> float:
        return eraser_auprc(self.gold(ctx, i), self.attr(ctx, i))
