"""Leaderboard statistics: hand-computed reference cases for xbench.results.stats."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xbench.core.errors import XBenchError
from xbench.results.stats import (aggregate_ranks, anchored, friedman_nemenyi, holm, metric_agreement, paired_tests, pareto_front, rank_groups)

COLS = ["task", "explainer", "metric", "example", "value", "error"]


def frame(cells: dict) -> pd.DataFrame:
    """{(task, explainer, metric): values} -> scores table; NaN values become failed rows."""
    rows = []
    for (t, e, m), vals in cells.items():
        for i, v in enumerate(vals):
            rows.append((t, e, m, f"x{i}", v, "" if np.isfinite(v) else "NaN attributions"))
    return pd.DataFrame(rows, columns=COLS)


def abc_scores() -> pd.DataFrame:
    """A >> B ~ C on one 'higher' metric over 20 examples."""
    base = np.linspace(0.2, 0.4, 20)
    wiggle = np.where(np.arange(20) % 2 == 0, 0.01, -0.01)
    return frame({("t", "A", "m"): base + 0.5 + 0.001 * np.arange(20),  # distinct differences: exact test
                   ("t", "B", "m"): base, ("t", "C", "m"): base + wiggle})


def means(s):
    """The cell means rank_groups orders by (the leaderboard's summarize gives them with CIs)."""
    return s.groupby(["task", "explainer", "metric"], sort=False)["value"].mean().reset_index(name="mean")


def test_holm_by_hand():
    # m = 3 (NaN not counted): sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03, np.nan])), [0.03, 0.06, 0.06, np.nan])
    assert holm(np.array([0.6, 0.5])).tolist() == [1.0, 1.0]  # capped at 1


def test_paired_tests_wilcoxon_pairs_and_zero_handling():
    s = abc_scores()
    s = pd.concat([s, frame({("t", "D", "m"): np.linspace(0.2, 0.4, 20)})])  # D == B exactly
    t = paired_tests(s, {"m": "higher"}).set_index(["explainer_a", "explainer_b"])
    ab = t.loc[("A", "B")]
    assert ab["n_pairs"] == 20 and ab["mean_diff"] == pytest.approx(0.5095) and ab["better"] == "A"
    assert ab["p"] == pytest.approx(2 / 2**20)  # exact: all 20 differences positive
    assert ab["p_holm"] == pytest.approx(6 * 2 / 2**20)  # A-B, A-C, A-D tie for the smallest of 6: Holm gives each 6p
    bd = t.loc[("B", "D")]
    assert bd["p"] == 1.0 and bd["note"] == "all differences zero" and bd["better"] == ""
    assert t.loc[("B", "C"), "p"] > 0.5
    lower = paired_tests(s, {"m": "lower"}).set_index(["explainer_a", "explainer_b"])
    assert lower.loc[("A", "B"), "better"] == "B"


def test_paired_tests_small_samples_with_ties_use_the_normal_approximation():
    """n = 12 with a zero and tied |d| (scipy's 'auto' would run a minutes-long permutation test):
    zeros dropped (n' = 11), tie-corrected normal approximation, computed here by hand."""
    a = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    d = np.array([0.0, 1, 1, -1, 2, 2, 3, -3, 4, 5, 6, 7])  # a - b
    r = paired_tests(frame({("t", "a", "m"): a, ("t", "b", "m"): a - d}), {"m": "higher"}).iloc[0]
    nz = d[d != 0]
    ranks = pd.Series(np.abs(nz)).rank().to_numpy()      # average ranks of |d|: ties share
    r_plus, r_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
    n = len(nz)
    _, counts = np.unique(np.abs(nz), return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24 - (counts ** 3 - counts).sum() / 48
    z = (min(r_plus, r_minus) - n * (n + 1) / 4) / np.sqrt(var)
    assert r["statistic"] == min(r_plus, r_minus)
    assert r["p"] == pytest.approx(2 * stats.norm.cdf(z), rel=1e-9)
    # no ties, no zeros, n <= 50: the exact null distribution (all 12 positive: p = 2 / 2^12)
    r = paired_tests(frame({("t", "a", "m"): a, ("t", "b", "m"): a - np.arange(1.0, 13)}), {"m": "higher"}).iloc[0]
    assert r["p"] == pytest.approx(2 / 2**12, rel=1e-12)


def test_paired_tests_use_only_common_successes():
    s = frame({("t", "a", "m"): [1.0, 2.0, np.nan, 4.0], ("t", "b", "m"): [0.0, np.nan, 3.0, 3.0]})
    r = paired_tests(s, {"m": "higher"}).iloc[0]
    assert r["n_pairs"] == 2 and r["mean_diff"] == pytest.approx(1.0)
    with pytest.raises(XBenchError, match="appears twice"):
        paired_tests(pd.concat([s, s]), {"m": "higher"})


# ------------------------------------------------------------------ rank groups

def test_rank_groups_a_beats_b_and_c_which_tie():
    s = abc_scores()
    dirs = {"m": "higher"}
    g = rank_groups(means(s), paired_tests(s, dirs), dirs).set_index("explainer")
    assert g.loc["A", "group"] == "1" and g.loc["A", "rank"] == 1 and np.isnan(g.loc["A", "p_vs_best"])
    assert g.loc["B", "group"] == "2–3" and g.loc["C", "group"] == "2–3"
    assert sorted(g.loc[["B", "C"], "rank"]) == [2, 3]
    assert g.loc["B", "p_vs_best"] < 1e-4
    # direction 'lower' flips the order: B ~ C best, A last
    lo = {"m": "lower"}
    g = rank_groups(means(s), paired_tests(s, lo), lo).set_index("explainer")
    assert g.loc["A", "group"] == "3" and g.loc["B", "group"] == "1–2" and g.loc["C", "group"] == "1–2"


def test_rank_groups_are_monotone_and_skip_nan_means():
    cells = pd.DataFrame({"task": "t", "metric": "m", "explainer": ["a", "b", "c", "d"],
                          "mean": [3.0, 2.0, 1.0, np.nan]})
    # b is significantly worse than a, c is not (e.g. noisier): raw best ranks 1, 2, 1 -> smoothed 1, 2, 2;
    # raw worst ranks 3 - 1, 3, 3
    tests = pd.DataFrame({"task": "t", "metric": "m", "explainer_a": ["a", "a", "b"], "explainer_b": ["b", "c", "c"],
                          "p_holm": [0.01, 0.2, 0.3]})
    g = rank_groups(cells, tests, {"m": "higher"}).set_index("explainer")
    # a: c is not significantly worse, so a could be 2nd: "1–2"; c alone would get "1–3", smoothing gives "2–3"
    assert list(g.loc[["a", "b", "c"], "group"]) == ["1–2", "2–3", "2–3"]
    assert g.loc["d", "group"] == "–" and np.isnan(g.loc["d", "rank"])


# ------------------------------------------------------------------ anchored

def test_anchored_random_zero_ideal_one_and_lower_direction():
    cm = pd.DataFrame({"task": "t", "explainer": ["random", "ideal", "mid"] * 3,
                       "metric": ["hi"] * 3 + ["lo"] * 3 + ["inf"] * 3,
                       "mean": [0.2, 1.0, 0.6, 0.5, 0.0, 0.25, 1.0, 5.0, 3.0]})
    ideal = {"hi": 1.0, "lo": 0.0, "inf": np.inf}
    direction = {"hi": "higher", "lo": "lower", "inf": "higher"}
    a = anchored(cm, ideal=ideal, direction=direction).set_index(["metric", "explainer"])
    assert str(a.loc[("lo", "random"), "anchored"]) == "0.0"  # not -0.0
    assert a.loc[("hi", "random"), "anchored"] == 0.0 and a.loc[("hi", "ideal"), "anchored"] == 1.0
    assert a.loc[("hi", "mid"), "anchored"] == pytest.approx(0.5)
    assert a.loc[("lo", "random"), "anchored"] == 0.0 and a.loc[("lo", "ideal"), "anchored"] == 1.0
    assert a.loc[("lo", "mid"), "anchored"] == pytest.approx(0.5)  # (0.25 - 0.5) / (0 - 0.5)
    assert np.isnan(a.loc[("inf", "mid"), "anchored"]) and a.loc[("inf", "mid"), "anchor_note"] == "ideal is infinite"
    no_rnd = anchored(cm[cm.explainer != "random"], ideal=ideal, direction=direction)
    assert no_rnd["anchored"].isna().all() and "no 'random' explainer" in no_rnd["anchor_note"].iloc[0]
    at_ideal = anchored(pd.DataFrame({"task": "t", "explainer": ["random", "x"], "metric": "hi", "mean": [1.0, 0.9]}),
                        ideal=ideal, direction=direction)
    assert at_ideal["anchored"].isna().all() and (at_ideal["anchor_note"] == "random scores the ideal").all()


# ------------------------------------------------------------------ aggregate ranks

def test_aggregate_ranks_family_vs_metric_weighting():
    ranks = pd.DataFrame({"task": "t", "explainer": "e", "metric": ["f1", "f2", "f3", "p1", "c1"],
                          "rank": [1, 1, 1, 4, 9]})
    fam = {"f1": "faithfulness", "f2": "faithfulness", "f3": "faithfulness", "p1": "plausibility", "c1": "cost"}
    a = aggregate_ranks(ranks, fam).set_index("scope")
    assert a.loc["family:faithfulness", "mean_rank"] == 1.0 and a.loc["family:cost", "mean_rank"] == 9.0
    assert a.loc["overall", "mean_rank"] == pytest.approx(2.5)  # (1 + 4) / 2, cost excluded
    assert a.loc["overall", "metrics"] == ["f1", "f2", "f3", "p1"]
    m = aggregate_ranks(ranks, fam, weight="metric").set_index("scope")
    assert m.loc["overall", "mean_rank"] == pytest.approx(7 / 4)
    with pytest.raises(XBenchError):
        aggregate_ranks(ranks, fam, weight="task")


# ------------------------------------------------------------------ Friedman / Nemenyi

# Demšar (2006), JMLR 7, Table 6: AUC of C4.5, C4.5+m, C4.5+cf, C4.5+m+cf on 14 data sets.
DEMSAR = [
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.97501, 0.975], [0.957, 0.978, 0.946, 0.970]]
# The paper ranks "voting" (4, 1, 2, 3): its unrounded AUCs of C4.5+cf and C4.5+m+cf differ, hence 0.97501.


def test_friedman_nemenyi_demsar_example():
    tab = pd.DataFrame(DEMSAR, columns=["c45", "c45_m", "c45_cf", "c45_m_cf"])
    r = friedman_nemenyi(tab, direction="higher")
    assert (r.k, r.n, r.reason) == (4, 14, "")
    np.testing.assert_allclose(r.avg_ranks.to_numpy(), [3.143, 2.000, 2.893, 1.964], atol=5e-4)
    # Demšar's chi2_F = 9.28 has no tie correction; scipy divides by 1 - sum(t^3 - t) / (N k (k^2 - 1))
    # = 1 - (3 * 6 + 60) / 840 (three pairs of ties and one four-way tie)
    chi2 = 12 * 14 / 20 * (np.sum(r.avg_ranks.to_numpy() ** 2) - 4 * 25 / 4)
    assert chi2 == pytest.approx(9.28, abs=0.01)
    assert r.statistic == pytest.approx(chi2 / (1 - 78 / 840))
    assert r.p < 0.05
    assert r.q_alpha == pytest.approx(2.569, abs=1e-3)
    assert r.cd == pytest.approx(1.25, abs=0.01)


def test_friedman_needs_three_explainers_and_two_tasks():
    r = friedman_nemenyi(pd.DataFrame({"a": [1, 2], "b": [2, 1]}))
    assert np.isnan(r.statistic) and "3 explainers" in r.reason
    r = friedman_nemenyi(pd.DataFrame({"a": [1.0, np.nan], "b": [2.0, 1.0], "c": [3.0, 2.0]}))
    assert r.n == 1 and np.isnan(r.p) and "2 tasks" in r.reason


# ------------------------------------------------------------------ metric agreement

def test_metric_agreement_orients_by_direction_and_flags_disagreement():
    expl = ["a", "b", "c", "d"]
    cm = pd.concat([
        pd.DataFrame({"task": "t", "explainer": expl, "metric": "comp", "mean": [0.9, 0.7, 0.5, 0.1]}),
        pd.DataFrame({"task": "t", "explainer": expl, "metric": "suff", "mean": [0.1, 0.2, 0.3, 0.4]}),  # lower
        pd.DataFrame({"task": "t", "explainer": expl, "metric": "f1", "mean": [0.1, 0.3, 0.5, 0.6]}),
        pd.DataFrame({"task": "u", "explainer": expl, "metric": "comp", "mean": [0.9, 0.7, 0.5, 0.1]}),
        pd.DataFrame({"task": "u", "explainer": expl, "metric": "f1", "mean": [0.9, 0.8, 0.5, 0.2]})])
    dirs = {"comp": "higher", "suff": "lower", "f1": "higher"}
    fams = {"comp": "faithfulness", "suff": "faithfulness", "f1": "plausibility"}
    ag = metric_agreement(cm, dirs, fams)
    p = ag.pairs.set_index(["task", "metric_a", "metric_b"])["tau"]
    assert p[("t", "comp", "suff")] == pytest.approx(1.0)  # same order once 'lower' is flipped
    assert p[("t", "comp", "f1")] == pytest.approx(-1.0) and p[("u", "comp", "f1")] == pytest.approx(1.0)
    fam = ag.families.set_index(["task", "family_a", "family_b"])
    assert fam.loc[("t", "faithfulness", "plausibility"), "mean_tau"] == pytest.approx(-1.0)
    assert fam.loc[("t", "faithfulness", "plausibility"), "n_pairs"] == 2
    assert len(ag.flags) == 1 and ag.flags[0].startswith("faithfulness and plausibility disagree on t")
    # expensive = good: tau -1 against faithfulness, were cost not left out
    cost = cm[(cm.metric == "comp") & (cm.task == "t")].assign(metric="secs", mean=[4.0, 3.0, 2.0, 1.0])
    with_cost = metric_agreement(pd.concat([cm, cost]), {**dirs, "secs": "lower"}, {**fams, "secs": "cost"})
    assert with_cost.flags == ag.flags  # cost is left out: no "cost and faithfulness disagree"
    assert "secs" not in set(with_cost.pairs.metric_a) | set(with_cost.pairs.metric_b)


# ------------------------------------------------------------------ Pareto

def test_pareto_front_dominance_and_ties():
    idx = pd.MultiIndex.from_tuples([("t", e) for e in ["fast", "good", "both", "bad", "twin", "nan"]])
    quality = pd.Series([0.5, 0.9, 0.9, 0.4, 0.5, 0.99], index=idx)
    cost = pd.Series([1.0, 10.0, 10.0, 5.0, 1.0, np.nan], index=idx)
    r = pareto_front(quality, cost).set_index("explainer")
    assert not r.loc["fast", "dominated"] and not r.loc["twin", "dominated"]  # exact ties: both on the front
    assert not r.loc["good", "dominated"] and not r.loc["both", "dominated"]
    assert r.loc["bad", "dominated"] and r.loc["bad", "dominators"] == ["fast", "twin"]
    assert pd.isna(r.loc["nan", "dominated"])
    q2 = pd.Series([0.5, 0.6], index=pd.MultiIndex.from_tuples([("t", "x"), ("t", "y")]))
    c2 = pd.Series([1.0, 1.0], index=q2.index)
    r2 = pareto_front(q2, c2).set_index("explainer")  # equal cost, better quality dominates
    assert r2.loc["x", "dominators"] == ["y"] and not r2.loc["y", "dominated"]


def test_registry_metadata_is_used_when_no_mapping_given():
    s = frame({("t", "a", "sufficiency"): [0.1, 0.2, 0.1], ("t", "b", "sufficiency"): [0.5, 0.6, 0.7]})
    t = paired_tests(s)
    assert t.iloc[0]["better"] == "a"  # sufficiency: lower is better
    with pytest.raises(XBenchError, match="no direction given"):
        paired_tests(s, {"other": "higher"})
