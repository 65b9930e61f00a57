"""Agreement between explainers: the "disagreement problem" (Krishna et al. 2022), per task.

For every pair of explainers on the same examples, averaged over examples:

- ``kendall_tau``: Kendall τ-b between the two attribution vectors (scipy.stats.kendalltau);
  examples where either vector is constant are left out of that pair's mean;
- ``topk_intersection``: |top_k(|a|) ∩ top_k(|b|)| / k, with k = max(1, ⌈``k_fraction``·F⌉)
  (Krishna et al.'s feature agreement);
- ``sign_agreement``: |{i ∈ top_k(|a|) ∩ top_k(|b|) : sign a_i = sign b_i}| / k (their sign
  agreement).

Top-k by magnitude breaks ties by feature position (stable sort), the same for every explainer.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

MEASURES = ("kendall_tau", "topk_intersection", "sign_agreement")


def _pair(a: np.ndarray, b: np.ndarray, k_fraction: float) -> tuple[float, float, float]:
    k = max(1, math.ceil(k_fraction * len(a) - 1e-9))
    ta = set(np.argsort(-np.abs(a), kind="stable")[:k].tolist())
    tb = set(np.argsort(-np.abs(b), kind="stable")[:k].tolist())
    both = ta & tb
    same_sign = sum(np.sign(a[i]) == np.sign(b[i]) for i in both)
    tau = kendalltau(a, b).statistic if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan
    return float(tau), len(both) / k, same_sign / k


def agreement(task: str, attributions: dict[str, list[np.ndarray]], k_fraction: float = 0.25) -> pd.DataFrame:
    """Rows (task, a, b, measure means, n) for every ordered pair of explainers, a ≠ b, and a = b."""
    rows = []
    names = list(attributions)
    for a, b in itertools.combinations_with_replacement(names, 2):
        vals = np.array([_pair(x, y, k_fraction) for x, y in zip(attributions[a], attributions[b])
                         if np.all(np.isfinite(x)) and np.all(np.isfinite(y))]).reshape(-1, 3)
        with np.errstate(invalid="ignore"):
            means = [float(np.nanmean(vals[:, j])) if np.isfinite(vals[:, j]).any() else float("nan")
                     for j in range(3)]
        for x, y in dict.fromkeys([(a, b), (b, a)]):  # in this order (a set's order changed per process)
            rows.append({"task": task, "a": x, "b": y, **dict(zip(MEASURES, means)), "n": len(vals)})
    return pd.DataFrame(rows)
