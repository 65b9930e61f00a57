"""Leaderboard statistics against references computed independently of the code under test (scipy
called directly, numpy, or by hand), including the boundary cases a snapshot would not notice."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xbench.core.seeding import np_rng
from xbench.results.leaderboard import SCORE_COLUMNS, bootstrap_ci, summarize, task_summary
from xbench.results.stats import cd_groups, rank_groups


def test_bootstrap_ci_is_scipys_95_percent_percentile_interval():
    v = np.array([0.1, 0.9, 0.4, 0.35, 0.8, 0.05, 0.6, 0.65, 0.2, 0.55])
    lo, hi = bootstrap_ci(v, "t", "e", "m")
    ref = stats.bootstrap((v,), np.mean, n_resamples=1000, confidence_level=0.95, method="percentile",
                          vectorized=True, rng=np_rng("bootstrap", "t", "e", "m")).confidence_interval
    assert (lo, hi) == (ref.low, ref.high)
    narrower = stats.bootstrap((v,), np.mean, n_resamples=1000, confidence_level=0.90, method="percentile",
                               vectorized=True, rng=np_rng("bootstrap", "t", "e", "m")).confidence_interval
    assert lo < narrower.low and narrower.high < hi  # a 90% interval would be caught


def scores_of(cells: dict) -> pd.DataFrame:
    rows = [(t, e, m, f"x{i}", v, "", "mask", 1, 0) for (t, e, m), vs in cells.items() for i, v in enumerate(vs)]
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def test_mean_and_median_on_skewed_values():
    v = [0.0, 0.0, 0.0, 0.1, 0.9]  # mean 0.2, median 0
    lb = summarize(scores_of({("t", "e", "comprehensiveness"): v, ("t", "random", "comprehensiveness"): [0.0] * 5}))
    row = lb[lb.explainer == "e"].iloc[0]
    assert row["mean"] == pytest.approx(np.mean(v)) and row["median"] == np.median(v) == 0.0


def test_rank_groups_need_the_worst_side_smoothing():
    """A is not significantly better than C, but B (ranked below A) is: B's worst rank is 2, so A's
    (ranked above B) cannot be 3. Without the running minimum from the bottom A would read #1–3."""
    cells = pd.DataFrame({"task": "t", "metric": "comprehensiveness", "explainer": ["A", "B", "C"],
                          "mean": [0.9, 0.8, 0.1]})
    p = {("A", "B"): 0.5, ("A", "C"): 0.2, ("B", "C"): 0.01}
    tests = pd.DataFrame([{"task": "t", "metric": "comprehensiveness", "explainer_a": a, "explainer_b": b, "p_holm": q}
                          for (a, b), q in p.items()])
    g = rank_groups(cells, tests).set_index("explainer")
    assert g.loc["A", "group"] == "1–2" and g.loc["B", "group"] == "1–2" and g.loc["C", "group"] == "2–3"
    # and the best side: C's best is not better than B's
    assert g.loc["C", "best_rank"] >= g.loc["B", "best_rank"]


def test_cd_groups_are_strictly_within_the_critical_difference():
    r = pd.Series({"a": 1.0, "b": 2.0, "c": 3.0})
    assert cd_groups(r, 1.0) == []  # a difference of exactly CD is significant: no group
    assert cd_groups(r, 1.0 + 1e-9) == [["a", "b"], ["b", "c"]]
    assert cd_groups(r, 2.0 + 1e-9) == [["a", "b", "c"]]


def test_rank_1_share_counts_metrics_whose_group_includes_1():
    # e ties with f at the top of m1 (no test separates them), is alone first on m2, second on m3
    rng = np.random.default_rng(0)
    base = rng.normal(size=12)
    tie = base + 5 + rng.normal(scale=0.01, size=12)  # differences of both signs: no test separates e and f
    cells = {("t", "e", "comprehensiveness"): list(base + 5), ("t", "f", "comprehensiveness"): list(tie),
             ("t", "e", "sufficiency"): list(base - 5), ("t", "f", "sufficiency"): list(base + 5),
             ("t", "e", "deletion_auc"): list(base + 5), ("t", "f", "deletion_auc"): list(base - 5),
             ("t", "random", "comprehensiveness"): list(base), ("t", "random", "sufficiency"): list(base),
             ("t", "random", "deletion_auc"): list(base)}
    summary, _ = task_summary(summarize(scores_of(cells)))
    share = dict(zip(summary["explainer"], summary["rank_1"]))
    assert share["e"] == "2/3" and share["f"] == "2/3" and share["random"].endswith("/3")
