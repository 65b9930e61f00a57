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

from xbench.metrics.base import Context, Metric

ALL_ZERO = "all attributions are zero: nothing to measure"


def normalised_abs(a: np.ndarray) -> np.ndarray:
    """|a| / max|a| (Quantus's ``abs`` and ``normalise_by_max``, per example); all zeros stay zeros."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    m = a.max(initial=0.0)
    return a / m if m > 0 else a


def gini(a: np.ndarray) -> float:
    """Quantus ``Sparseness.evaluate_batch`` for one explanation: the Gini index of â = |a|/max|a| + 1e-7.

    With â sorted ascending, G = Σ_i (2i − F − 1) â_(i) / (F Σ_i â_i), i = 1..F. With the 1e-7, a
    one-hot explanation gives (F − 1) / (F (1 + F·1e-7)).
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


class _Complexity(Metric):
    family = "complexity"
    needs = frozenset()

    def why_not(self, ctx: Context, i: int) -> str | None:
        """All-zero attributions fail, as in Quantus (its ``assert_attributions`` refuses them):
        they have no distribution, and the epsilons alone would score them (Gini 0, entropy NaN)."""
        why = super().why_not(ctx, i)
        if why is None and not np.any(ctx.expl.attributions[i]):
            return ALL_ZERO
        return why


class Sparseness(_Complexity):
    """Sparseness (Chalasani et al. 2020): the Gini index of the absolute attributions, as in Quantus.

    Chalasani et al., "Concise explanations of neural networks using adversarial training", ICML
    2020; Quantus ``Sparseness``. G = Σ_i (2i − F − 1) â_(i) / (F Σ_i â_i) over
    â = |a|/max|a| + 1e-7 sorted ascending. 0 for uniform attributions; (F − 1)/F for a single
    non-zero feature, up to the epsilon. Higher is sparser: fewer features carry the explanation.
    All-zero attributions fail with an error saying so (Quantus refuses them)."""

    name = "sparseness"
    direction, ideal = "higher", 1.0
    range = (0.0, 1.0)
    formula = "Σ_i (2i − F − 1)·â_(i) / (F·Σ_i â_i),  â = |a|/max|a| + 1e−7, sorted ascending (Gini index)"

    def score_one(self, ctx: Context, i: int, state) -> float:
        return gini(ctx.expl.attributions[i])


class Complexity(_Complexity):
    """Complexity (Bhatt et al. 2020): entropy of the normalised absolute attributions, as in Quantus.

    Bhatt et al., "Evaluating and aggregating feature-based model explanations", IJCAI 2020;
    Quantus ``Complexity``. The Shannon entropy (nats) of the fractional contributions
    p_i = |a_i| / Σ_j |a_j|: H = −Σ_i p_i ln(p_i + 1e-12). 0 when one feature carries everything,
    ln F for uniform attributions. Lower is simpler. All-zero attributions fail with an error saying
    so (Quantus refuses them)."""

    name = "complexity"
    direction, ideal = "lower", 0.0
    range = (0.0, float("inf"))
    formula = "−Σ_i p_i·ln(p_i + 1e−12),  p_i = |a_i| / Σ_j |a_j|  (at most ln F)"

    def score_one(self, ctx: Context, i: int, state) -> float:
        return entropy(ctx.expl.attributions[i])
