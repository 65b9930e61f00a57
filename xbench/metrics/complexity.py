"""Complexity: how concentrated an explanation is, from the attributions alone (no model).

Both metrics are Quantus's (``quantus.Sparseness``, ``quantus.Complexity``, v0.6) with its
defaults: absolute values, each explanation divided by its largest absolute value, and the
same epsilons. They are written out here, not called, because Quantus's entry point takes one
dense batch of equal-shaped arrays (ours are ragged, one length per example), normalises by the
maximum over the *whole batch* (so an example's value would depend on the others beside it),
wants an ``x_batch`` of a shape it accepts, and costs ~5 s to import. Each formula is three
lines; ``tests/test_complexity_sanity.py`` checks equality with Quantus itself.
"""
from __future__ import annotations

import numpy as np

from . import Context, Metric

ALL_ZERO = "all attributions are zero: the entropy is undefined"


def normalised_abs(a: np.ndarray) -> np.ndarray:
    """|a| / max|a| (Quantus's ``abs`` and ``normalise_by_max``, per example); all zeros stay zeros."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    m = a.max(initial=0.0)
    return a / m if m > 0 else a


def gini(a: np.ndarray) -> float:
    """Quantus ``Sparseness.evaluate_batch`` for one explanation: the Gini index of â = |a|/max|a| + 1e-7.

    With â sorted ascending, G = Σ_i (2i − F − 1) â_(i) / (F Σ_i â_i), i = 1..F. The 1e-7 makes an
    all-zero explanation uniform (G = 0), and makes a one-hot one (F − 1) / (F (1 + F·1e-7)).
    """
    x = np.sort(normalised_abs(a) + 1e-7)
    F = len(x)
    i = np.arange(1, F + 1)
    return float(((2 * i - F - 1) * x).sum() / (F * x.sum()))


def entropy(a: np.ndarray) -> float:
    """Quantus ``Complexity.evaluate_batch`` for one explanation: −Σ p_i ln(p_i + 1e-12), p = |a| / Σ|a|.

    The 1e-12 inside the log can make a one-hot explanation's value −1e-12; it is clipped to 0,
    the bottom of the range (a difference of 1e-12 from Quantus).
    """
    x = normalised_abs(a)
    p = x / x.sum()
    return max(0.0, float(-(p * np.log(p + 1e-12)).sum()))


class Sparseness(Metric):
    """Sparseness (Chalasani et al. 2020, "Concise explanations of neural networks using adversarial
    training"; Quantus ``Sparseness``): the Gini index of the absolute attributions,
    G = Σ_i (2i − F − 1) â_(i) / (F Σ_i â_i) over â = |a|/max|a| + 1e-7 sorted ascending.
    0 for uniform attributions (and, through the 1e-7, for all-zero ones); (F − 1)/F for a single
    non-zero feature, up to the epsilon. Higher is sparser: fewer features carry the explanation."""

    name = "sparseness"
    family = "complexity"
    direction, ideal = "higher", 1.0
    range = (0.0, 1.0)
    needs = frozenset()
    formula = "Σ_i (2i − F − 1)·â_(i) / (F·Σ_i â_i),  â = |a|/max|a| + 1e−7, sorted ascending (Gini index)"

    def score_one(self, ctx: Context, i: int, state) -> float:
        return gini(ctx.expl.attributions[i])


class Complexity(Metric):
    """Complexity (Bhatt et al. 2020, "Evaluating and aggregating feature-based model explanations";
    Quantus ``Complexity``): the Shannon entropy (nats) of the fractional contributions
    p_i = |a_i| / Σ_j |a_j|, H = −Σ_i p_i ln(p_i + 1e-12). 0 when one feature carries everything,
    ln F for uniform attributions. Lower is simpler. All-zero attributions have no distribution:
    such an example fails with an error saying so (Quantus returns NaN)."""

    name = "complexity"
    family = "complexity"
    direction, ideal = "lower", 0.0
    range = (0.0, float("inf"))
    needs = frozenset()
    formula = "−Σ_i p_i·ln(p_i + 1e−12),  p_i = |a_i| / Σ_j |a_j|  (at most ln F)"

    def why_not(self, ctx: Context, i: int) -> str | None:
        why = super().why_not(ctx, i)
        if why is None and not np.any(ctx.expl.attributions[i]):
            return ALL_ZERO
        return why

    def score_one(self, ctx: Context, i: int, state) -> float:
        return entropy(ctx.expl.attributions[i])
