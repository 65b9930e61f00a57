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


def unscored(lb: pd.DataFrame) -> pd.Series:
    """True on the rows of a (task, metric) that no explainer scored on any example (``n`` = 0 for
    every explainer: e.g. an image localisation metric on a task whose examples have no gold pixels,
    every example skipped). Such a metric ranks no one: its all-NaN means tie every explainer at rank
    1, so the summary's family and overall ranks and its "rank 1 in" counts leave it out."""
    if lb.empty:
        return pd.Series(False, index=lb.index)
    return lb.groupby(["task", "metric"], sort=False)["n"].transform("max").fillna(0).eq(0)


def explainer_order(g: pd.DataFrame) -> list[str]:
    """A task's explainers by mean rank over its non-cost metrics (those some explainer scored, see
    :func:`unscored`), then those with cost rows only."""
    quality = g[(g["family"] != "cost") & ~unscored(g)]
    order = quality.groupby("explainer", sort=False)["rank"].mean().sort_values(kind="stable").index.tolist()
    return order + [e for e in dict.fromkeys(g["explainer"]) if e not in order]


#: the table cell of a metric that skipped every example (it counts in no rank, see :func:`unscored`)
NOT_SCORED = "not scored: every example skipped"
#: the metric whose notes hold each explainer's and the model's mean text share
MODALITY_SHARE = "modality_share_gap"


def modality_shares(g: pd.DataFrame, info: dict[str, Any] | None) -> pd.DataFrame:
    """A task's modality-share table: per explainer with a ``modality_share_gap`` row (in
    :func:`explainer_order`), the metric's notes from the task's manifest entry ``info``
    (``info["explainers"][e]["metric_notes"]["modality_share_gap"]``: the mean over the scored
    examples of the explainer's text share T̂ and of the model's T, and how many examples the model
    ignores both modalities on) beside the gap's leaderboard row (mean, CI, rank group, counts).
    Shares the notes lack are NaN; empty when the task has no such rows or no notes at all."""
    cols = ["explainer", "explainer_text_share", "model_text_share", "n_model_indifferent", "mean", "ci_low",
            "ci_high", "rank", "rank_group", "n", "n_failed", "n_skipped", "family"]
    rows = g[g["metric"] == MODALITY_SHARE].set_index("explainer")
    explainers = (info or {}).get("explainers", {})
    out = []
    for e in explainer_order(g):
        if e not in rows.index:
            continue
        notes = (explainers.get(e, {}).get("metric_notes") or {}).get(MODALITY_SHARE) or {}
        r = rows.loc[e]

        def num(k: str) -> float:
            v = notes.get(k)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")

        out.append([e, num("explainer_text_share"), num("model_text_share"), num("n_model_indifferent")]
                   + [r[c] for c in cols[4:]])
    df = pd.DataFrame(out, columns=cols)
    if np.isnan(df[["explainer_text_share", "model_text_share"]].to_numpy(dtype=np.float64)).all():
        return df.iloc[:0]
    return df


def task_summary(lb: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per (task, explainer): mean per-metric rank in each family and overall (every quality family
    weighs the same; cost is not quality), ``rank_1`` = "k/M": in k of its M quality metrics the
    explainer's rank group includes 1 (tied for first), the mean random-anchored faithfulness score, seconds per
    example, and whether another explainer is at least as faithful and as cheap (Pareto-dominated).
    Also the flags of metric families that rank explainers in opposite orders (mean Kendall τ < 0).
    Metrics no explainer scored (:func:`unscored`) count in none of the ranks; a family left with no
    scored metric has no rank column for that task."""
    from xbench.results.stats import aggregate_ranks, metric_agreement, pareto_front

    lb = lb[~unscored(lb)]
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
