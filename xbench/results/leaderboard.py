"""Leaderboard numbers: per (task, explainer, metric) mean with a 95% bootstrap CI, rank groups and
anchored scores; per task a summary; across tasks a Friedman/Nemenyi test. Formatting and writing
them is :mod:`xbench.report.tables`'s.

Pure functions over the per-example scores table. Failed examples (NaN attributions,
empty rationales) are counted in ``n_failed`` and left out of the mean, never dropped
silently; examples a metric leaves out by design (a reason starting ``skipped:``, e.g. a
misclassified example for plausibility) are counted in ``n_skipped``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from xbench.core.progress import bar
from xbench.core.seeding import np_rng

ROW_FIELDS = ["task", "explainer", "metric", "family", "direction", "mean", "median", "ci_low", "ci_high",
              "n", "n_failed", "n_skipped", "rank", "rank_group", "p_vs_best", "anchored"]
ARROW = {"higher": "↑", "lower": "↓"}
#: the columns of the per-example scores table (``scores.csv``)
SCORE_COLUMNS = ["task", "explainer", "metric", "example", "value", "error", "replacement", "target", "seed"]


def bootstrap_ci(values: np.ndarray, *key: object, n_resamples: int = 1000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap, vectorised), seeded by ``key``."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1 or np.all(values == values[0]):
        return float(values[0]), float(values[0])
    res = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, confidence_level=level,
                          method="percentile", vectorized=True, rng=np_rng("bootstrap", *key))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def summarize(scores: pd.DataFrame, n_resamples: int = 1000) -> pd.DataFrame:
    """One row per (task, explainer, metric) with ROW_FIELDS, ranked within (task, metric)."""
    from xbench.metrics.base import Metric

    rows = []
    groups = scores.groupby(["task", "explainer", "metric"], sort=False)
    for (task, expl, metric), g in bar(groups, "statistics", groups.ngroups, "cell"):
        meta = Metric.registry.get(metric)
        err = g["error"].fillna("")
        ok = g["value"][err == ""].to_numpy(dtype=np.float64)
        skipped = int(err.str.startswith("skipped: ").sum())  # left out by design, not failures
        lo, hi = bootstrap_ci(ok, task, expl, metric, n_resamples=n_resamples)
        rows.append({"task": task, "explainer": expl, "metric": metric, "family": meta.family,
                     "direction": meta.direction, "mean": float(ok.mean()) if len(ok) else float("nan"),
                     "median": float(np.median(ok)) if len(ok) else float("nan"), "ci_low": lo, "ci_high": hi,
                     "n": int(len(ok)), "n_failed": int(len(g) - len(ok) - skipped), "n_skipped": skipped})
    df = pd.DataFrame(rows, columns=ROW_FIELDS[:ROW_FIELDS.index("rank")])
    df["rank"] = 0
    for (_, metric), g in df.groupby(["task", "metric"], sort=False):
        asc = g["direction"].iloc[0] == "lower"
        df.loc[g.index, "rank"] = g["mean"].rank(method="min", ascending=asc, na_option="bottom").astype(int)
    return add_statistics(df, scores)


def add_statistics(df: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Add ``rank_group`` (explainers whose paired Wilcoxon tests, Holm-corrected within the task and
    metric, show no significant difference share a span of ranks, e.g. "1–3"), ``p_vs_best`` and the
    random-anchored score ``anchored`` = (s − s_random) / (s_ideal − s_random) (see :mod:`xbench.results.stats`)."""
    from xbench.results.stats import anchored, paired_tests, rank_groups

    key = ["task", "explainer", "metric"]
    groups = rank_groups(df, paired_tests(scores))[key + ["group", "p_vs_best"]]
    out = df.merge(groups.rename(columns={"group": "rank_group"}), on=key, how="left")
    anch = anchored(df[key + ["mean"]])[key + ["anchored"]]
    out = out.merge(anch, on=key, how="left")
    out["rank_group"] = out["rank_group"].fillna("–")
    return out[ROW_FIELDS]


FAMILY_ORDER = ("faithfulness", "ground_truth", "plausibility", "localisation", "modality", "stability", "sanity", "complexity",
                "cost")


def family_order(families: pd.Series) -> list[str]:
    """The families present, in :data:`FAMILY_ORDER`, then any others by name."""
    present = set(families)
    return [f for f in FAMILY_ORDER if f in present] + sorted(present - set(FAMILY_ORDER))


def explainer_order(g: pd.DataFrame) -> list[str]:
    """A task's explainers by mean rank over its non-cost metrics, then those with cost rows only."""
    quality = g[g["family"] != "cost"]
    order = quality.groupby("explainer", sort=False)["rank"].mean().sort_values(kind="stable").index.tolist()
    return order + [e for e in dict.fromkeys(g["explainer"]) if e not in order]


def task_summary(lb: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per (task, explainer): mean per-metric rank in each family and overall (every quality family
    weighs the same; cost is not quality), ``rank_1`` = "k/M": in k of its M quality metrics the
    explainer's rank group includes 1 (tied for first), the mean random-anchored faithfulness score, seconds per
    example, and whether another explainer is at least as faithful and as cheap (Pareto-dominated).
    Also the flags of metric families that rank explainers in opposite orders (mean Kendall τ < 0)."""
    from xbench.results.stats import aggregate_ranks, metric_agreement, pareto_front

    if lb.empty:
        return pd.DataFrame(), []
    agg = aggregate_ranks(lb[["task", "explainer", "metric", "rank"]], dict(zip(lb["metric"], lb["family"])))
    wide = agg.pivot_table(index=["task", "explainer"], columns="scope", values="mean_rank", sort=False)
    fams = [f for f in FAMILY_ORDER if f"family:{f}" in wide.columns] + \
        sorted(c[7:] for c in wide.columns if c.startswith("family:") and c[7:] not in FAMILY_ORDER)
    wide = wide[[f"family:{f}" for f in fams] + (["overall"] if "overall" in wide.columns else [])]
    wide.columns = [c.replace("family:", "rank_") if c != "overall" else "rank_overall" for c in wide.columns]
    faith = lb[lb["family"] == "faithfulness"].groupby(["task", "explainer"], sort=False)["anchored"].mean()
    secs = lb[lb["metric"] == "seconds"].set_index(["task", "explainer"])["mean"]
    q = lb[lb["family"] != "cost"]
    first = q["rank_group"].astype(str).str.match(r"^1(–|$)")  # the group "1" or a span "1–k": ties for first
    top = first.groupby([q["task"], q["explainer"]], sort=False).agg(["sum", "size"])
    shares = (top["sum"].astype(int).astype(str) + "/" + top["size"].astype(str)).rename("rank_1")
    out = wide.join(shares, how="left").join(faith.rename("faithfulness_anchored"), how="left") \
        .join(secs.rename("seconds"), how="left")
    if len(secs) and faith.notna().any():
        front = pareto_front(faith.dropna(), secs)
        out = out.join(front.set_index(["task", "explainer"])[["dominated"]], how="left")
    flags = []
    quality = lb[lb["family"] != "cost"]
    if len(quality):
        agree = metric_agreement(quality[["task", "explainer", "metric", "mean"]],
                                 dict(zip(lb["metric"], lb["direction"])), dict(zip(lb["metric"], lb["family"])))
        flags = list(agree.flags)
    out = out.reset_index().sort_values(["task", "rank_overall"], kind="stable") if "rank_overall" in out.columns \
        else out.reset_index()
    return out, flags


def across_tasks(summary: pd.DataFrame) -> dict[str, Any] | None:
    """Friedman test over tasks on the overall mean rank, with the Nemenyi critical difference
    (:func:`xbench.results.stats.friedman_nemenyi`), over the explainers scored on every task. Returns
    the statistic, p, k, N, CD, each explainer's average rank (1 = best) and the CD groups
    (explainers whose average ranks differ by less than CD); None with fewer than 2 tasks."""
    from xbench.results.stats import cd_groups, friedman_nemenyi

    if summary.empty or "rank_overall" not in summary.columns or summary["task"].nunique() < 2:
        return None
    tab = summary.pivot_table(index="task", columns="explainer", values="rank_overall", sort=False)
    left_out = sorted(tab.columns[tab.isna().any()].tolist())
    res = friedman_nemenyi(tab.dropna(axis=1, how="any"), direction="lower")
    ranks = res.avg_ranks.sort_values(kind="stable")

    def num(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return {"score": "rank_overall", "tasks": list(tab.index), "statistic": num(res.statistic), "p": num(res.p),
            "k": res.k, "n": res.n, "cd": num(res.cd), "alpha": 0.05, "reason": res.reason,
            "avg_ranks": {str(k): float(v) for k, v in ranks.items()},
            "groups": cd_groups(ranks, res.cd), "not_on_every_task": left_out}


def read_scores(path: Path) -> pd.DataFrame:
    """A scores CSV exactly as written: floats round-trip bit for bit, empty errors stay ''."""
    return pd.read_csv(path, keep_default_na=False, na_values={"value": [""]},
                       dtype={"error": str, "example": str})


def load_leaderboard(run_dir: Path) -> pd.DataFrame:
    return pd.DataFrame(json.loads((Path(run_dir) / "leaderboard.json").read_text()), columns=ROW_FIELDS)
