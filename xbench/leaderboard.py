"""Leaderboard v1: per (task, explainer, metric) mean with a 95% bootstrap CI, and per-metric ranks.

Pure functions over the per-example scores table. Failed examples (NaN attributions,
empty rationales) are counted in ``n_failed`` and left out of the mean, never dropped
silently.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tabulate import tabulate

from .io import atomic_write, atomic_write_json, atomic_write_text
from .seeding import np_rng

ROW_FIELDS = ["task", "explainer", "metric", "family", "direction", "mean", "median", "ci_low", "ci_high",
              "n", "n_failed", "rank", "rank_group", "p_vs_best", "anchored"]
ARROW = {"higher": "↑", "lower": "↓"}


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
    from .metrics import Metric

    rows = []
    for (task, expl, metric), g in scores.groupby(["task", "explainer", "metric"], sort=False):
        meta = Metric.registry.get(metric)
        ok = g["value"][g["error"].fillna("") == ""].to_numpy(dtype=np.float64)
        lo, hi = bootstrap_ci(ok, task, expl, metric, n_resamples=n_resamples)
        rows.append({"task": task, "explainer": expl, "metric": metric, "family": meta.family,
                     "direction": meta.direction, "mean": float(ok.mean()) if len(ok) else float("nan"),
                     "median": float(np.median(ok)) if len(ok) else float("nan"), "ci_low": lo, "ci_high": hi,
                     "n": int(len(ok)), "n_failed": int(len(g) - len(ok))})
    df = pd.DataFrame(rows, columns=ROW_FIELDS[:ROW_FIELDS.index("rank")])
    df["rank"] = 0
    for (_, metric), g in df.groupby(["task", "metric"], sort=False):
        asc = g["direction"].iloc[0] == "lower"
        df.loc[g.index, "rank"] = g["mean"].rank(method="min", ascending=asc, na_option="bottom").astype(int)
    return add_statistics(df, scores)


def add_statistics(df: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Add ``rank_group`` (explainers whose paired Wilcoxon tests, Holm-corrected within the task and
    metric, show no significant difference share a span of ranks, e.g. "1–3"), ``p_vs_best`` and the
    random-anchored score ``anchored`` = (s − s_random) / (s_ideal − s_random) (see :mod:`xbench.stats`)."""
    from .stats import anchored, paired_tests, rank_groups

    key = ["task", "explainer", "metric"]
    groups = rank_groups(df, paired_tests(scores))[key + ["group", "p_vs_best"]]
    out = df.merge(groups.rename(columns={"group": "rank_group"}), on=key, how="left")
    anch = anchored(df[key + ["mean"]])[key + ["anchored"]]
    out = out.merge(anch, on=key, how="left")
    out["rank_group"] = out["rank_group"].fillna("–")
    return out[ROW_FIELDS]


def _fmt(v: float, family: str) -> str:
    if not np.isfinite(v):
        return "–"
    if family == "cost":
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{round(v, 3) + 0.0:.3f}"  # + 0.0: no "-0.000"


FAMILY_ORDER = ("faithfulness", "ground_truth", "plausibility", "localisation", "stability", "sanity", "complexity",
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


def _cell(r: pd.Series) -> str:
    rank = r.get("rank_group") if isinstance(r.get("rank_group"), str) else r["rank"]
    cell = f"{_fmt(r['mean'], r['family'])} [{_fmt(r['ci_low'], r['family'])}, {_fmt(r['ci_high'], r['family'])}]" \
           f" #{rank}"
    return cell + (f" ({r['n_failed']} failed)" if r["n_failed"] else "")


def task_summary(lb: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per (task, explainer): mean per-metric rank in each family and overall (every quality family
    weighs the same; cost is not quality), ``rank_1`` = "k/M": in k of its M quality metrics the
    explainer's rank group includes 1 (tied for first), the mean random-anchored faithfulness score, seconds per
    example, and whether another explainer is at least as faithful and as cheap (Pareto-dominated).
    Also the flags of metric families that rank explainers in opposite orders (mean Kendall τ < 0)."""
    from .stats import aggregate_ranks, metric_agreement, pareto_front

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
    (:func:`xbench.stats.friedman_nemenyi`), over the explainers scored on every task. Returns
    the statistic, p, k, N, CD, each explainer's average rank (1 = best) and the CD groups
    (explainers whose average ranks differ by less than CD); None with fewer than 2 tasks."""
    from .stats import cd_groups, friedman_nemenyi

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


def _across_markdown(acr: dict[str, Any]) -> str:
    if acr["p"] is None:
        test = f"Friedman test not computed: {acr['reason']}."
    else:
        test = (f"Friedman χ² = {acr['statistic']:.2f}, p = {acr['p']:.3g} (k = {acr['k']} explainers, "
                f"N = {acr['n']} tasks); Nemenyi CD = {acr['cd']:.2f} at α = {acr['alpha']}.")
    member = {e: ", ".join(str(i + 1) for i, g in enumerate(acr["groups"]) if e in g) for e in acr["avg_ranks"]}
    rows = [[e, f"{r:.2f}", member[e] or "–"] for e, r in acr["avg_ranks"].items()]
    text = ("## across tasks\n\nEach task ranks the explainers by their overall mean rank; the table gives the "
            "average of those ranks over the tasks (1 = best). " + test + " Explainers that share a CD group "
            "are not significantly different."
            + (f" Left out (not scored on every task): {', '.join(acr['not_on_every_task'])}."
               if acr["not_on_every_task"] else "") + "\n\n")
    return text + tabulate(rows, headers=["explainer", "average rank", "CD group"], tablefmt="github")


def _summary_table(summary: pd.DataFrame, task: str, fmt: str = "github") -> str:
    g = summary[summary["task"] == task].drop(columns="task").dropna(axis=1, how="all")  # other tasks' families
    cols = [c for c in g.columns if c != "explainer"]
    head = ["explainer"] + [c.replace("rank_", "rank: ") if c != "rank_1" else "rank 1 in" for c in cols]
    rows = []
    for _, r in g.iterrows():
        row = [r["explainer"]]
        for c in cols:
            v = r[c]
            if c == "dominated":
                row.append("" if pd.isna(v) else ("dominated" if v else "Pareto front"))
            elif isinstance(v, (float, np.floating)):
                row.append("–" if not np.isfinite(v) else (f"{v:.3g}" if c == "seconds" else f"{v:.2f}"))
            else:
                row.append(v)
        rows.append(row)
    return tabulate(rows, headers=head, tablefmt=fmt)


def to_markdown(lb: pd.DataFrame, manifest: dict[str, Any] | None = None,
                summary: tuple[pd.DataFrame, list[str]] | None = None) -> str:
    """Per task, one GitHub table per metric family: explainers x metrics, 'mean [ci_low, ci_high] #rank'."""
    overview, flags = summary if summary is not None else task_summary(lb)
    parts = []
    for task, g in lb.groupby("task", sort=False):
        order = explainer_order(g)
        head = f"## {task}\n\n"
        info = (manifest or {}).get("tasks", {}).get(task)
        if info:
            acc = info.get("model", {}).get("test_accuracy")
            head += (f"n = {info['n_examples']} examples; replacement `{info['replacement']}`; "
                     f"target `{info['target']}`; granularity `{info['granularity']}`"
                     + (f"; model held-out accuracy {acc:.3f}" if acc is not None else "") + ".\n\n")
        tables = []
        if "rank_overall" in overview.columns and task in set(overview["task"]):
            note = ("Mean rank per family and overall (families weigh equally; cost is not quality), "
                    "rank 1: in how many of its quality metrics the explainer's rank group includes 1, "
                    "mean random-anchored faithfulness ((s − s_random)/(s_ideal − s_random): 0 = random, "
                    "1 = ideal), seconds per example, and the cost–faithfulness Pareto front.")
            text = f"### summary\n\n{note}\n\n" + _summary_table(overview, task)
            mine = [f for f in flags if f" on {task} (" in f]
            if mine:
                text += "\n\n" + "\n".join(f"- ⚠ {f}" for f in mine)
            tables.append(text)
        for fam in family_order(g["family"]):
            fg = g[g["family"] == fam]
            metrics = list(dict.fromkeys(fg["metric"]))
            cells = {(r["explainer"], r["metric"]): _cell(r) for _, r in fg.iterrows()}
            table = [[e] + [cells.get((e, m), "n/a") for m in metrics] for e in order
                     if any((e, m) in cells for m in metrics)]
            headers = ["explainer"] + [f"{m} {ARROW[fg[fg['metric'] == m]['direction'].iloc[0]]}" for m in metrics]
            tables.append(f"### {fam}\n\n" + tabulate(table, headers=headers, tablefmt="github"))
        parts.append(head + "\n\n".join(tables))
    legend = ("Cells: mean [95% bootstrap CI] #rank group within the metric (1 = best; ↑ higher is better, "
              "↓ lower is better; explainers not significantly different by a paired Wilcoxon test, Holm-"
              "corrected, share a span of ranks such as 1–3). Rows are ordered by mean rank over the non-cost metrics; n/a: the metric "
              "does not apply to that explainer (e.g. seed stability of a deterministic one).")
    acr = across_tasks(overview)
    if acr is not None:
        parts.append(_across_markdown(acr))
    return "# xbench leaderboard\n\n" + legend + "\n\n" + "\n\n".join(parts) + "\n"


def to_latex(lb: pd.DataFrame, summary: pd.DataFrame | None = None) -> str:
    """Per task, the summary table and one booktabs table per metric family (tabulate's
    ``latex_booktabs``); cells as in the Markdown tables; then the across-tasks Friedman/Nemenyi
    table (:func:`across_tasks`) when there are two tasks or more."""
    summary = task_summary(lb)[0] if summary is None else summary
    parts = []
    for task, g in lb.groupby("task", sort=False):
        parts.append(f"% task: {task}")
        if not summary.empty and task in set(summary["task"]):
            parts.append(_summary_table(summary, task, "latex_booktabs"))
        for fam in family_order(g["family"]):
            fg = g[g["family"] == fam]
            metrics = list(dict.fromkeys(fg["metric"]))
            cells = {(r["explainer"], r["metric"]): _cell(r) for _, r in fg.iterrows()}
            explainers = list(dict.fromkeys(fg["explainer"]))
            table = [[e] + [cells.get((e, m), "n/a") for m in metrics] for e in explainers]
            parts.append(f"% {task}: {fam}\n" + tabulate(table, headers=["explainer"] + metrics,
                                                          tablefmt="latex_booktabs"))
    acr = across_tasks(summary)
    if acr is not None:
        test = (f"Friedman chi2 = {acr['statistic']:.2f}, p = {acr['p']:.3g}, k = {acr['k']}, N = {acr['n']}; "
                f"Nemenyi CD = {acr['cd']:.2f}" if acr["p"] is not None else acr["reason"])
        rows = [[e, f"{r:.2f}", ", ".join(str(i + 1) for i, g in enumerate(acr["groups"]) if e in g) or "--"]
                for e, r in acr["avg_ranks"].items()]
        parts.append(f"% across tasks: {test}\n" + tabulate(rows, headers=["explainer", "average rank", "CD group"],
                                                            tablefmt="latex_booktabs"))
    return "\n\n".join(parts) + "\n"


def write_leaderboard(run_dir: Path, scores: pd.DataFrame, manifest: dict[str, Any] | None = None) -> pd.DataFrame:
    lb = summarize(scores)
    run_dir = Path(run_dir)
    summary, flags = task_summary(lb)  # once, for every output
    atomic_write_text(run_dir / "leaderboard.tex", to_latex(lb, summary))
    atomic_write_json(run_dir / "summary.json", {"explainers": json.loads(summary.to_json(orient="records")),
                                                 "family_disagreement": flags, "across_tasks": across_tasks(summary)})
    atomic_write_json(run_dir / "leaderboard.json", json.loads(lb.to_json(orient="records")))
    atomic_write(run_dir / "leaderboard.csv", lambda f: lb.to_csv(f, index=False))
    atomic_write_text(run_dir / "leaderboard.md", to_markdown(lb, manifest, (summary, flags)))
    return lb


def read_scores(path: Path) -> pd.DataFrame:
    """A scores CSV exactly as written: floats round-trip bit for bit, empty errors stay ''."""
    return pd.read_csv(path, keep_default_na=False, na_values={"value": [""]},
                       dtype={"error": str, "example": str})


def load_leaderboard(run_dir: Path) -> pd.DataFrame:
    return pd.DataFrame(json.loads((Path(run_dir) / "leaderboard.json").read_text()), columns=ROW_FIELDS)
