"""Leaderboard tables as text: Markdown (GitHub tables), LaTeX (booktabs) and the files a run
directory holds (``leaderboard.md|json|csv|tex``, ``summary.json``), and the agreement table.

The numbers come from :mod:`xbench.results.leaderboard`; this module only formats and writes them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from xbench.core.io import atomic_write, atomic_write_json, atomic_write_text
from xbench.results.agreement import MEASURES
from xbench.results.leaderboard import (
    ARROW,
    MODALITY_SHARE,
    NOT_SCORED,
    across_tasks,
    explainer_order,
    family_order,
    modality_shares,
    summarize,
    task_summary,
)


def _fmt(v: float, family: str) -> str:
    if not np.isfinite(v):
        return "–"
    if family == "cost":
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return f"{round(v, 3) + 0.0:.3f}"  # + 0.0: no "-0.000"


def _cell(r: pd.Series) -> str:
    if not r["n"] and not r["n_failed"] and r["n_skipped"]:
        return NOT_SCORED
    rank = r.get("rank_group") if isinstance(r.get("rank_group"), str) else r["rank"]
    cell = f"{_fmt(r['mean'], r['family'])} [{_fmt(r['ci_low'], r['family'])}, {_fmt(r['ci_high'], r['family'])}]" \
           f" #{rank}"
    return cell + (f" ({r['n_failed']} failed)" if r["n_failed"] else "")


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


def _share(v: float) -> str:
    return "–" if not np.isfinite(v) else f"{v:.3f}"


def modality_share_markdown(g: pd.DataFrame, info: dict[str, Any] | None) -> str:
    """The "modality share" table of a task (:func:`~xbench.results.leaderboard.modality_shares`);
    '' when the task has none."""
    ms = modality_shares(g, info)
    if ms.empty:
        return ""
    note = ("Per explainer, the mean over the scored examples of its text share T̂ = Σ_text |a| / Σ |a| and of "
            "the model's text share T = |φ_T| / (|φ_T| + |φ_I|) (exact two-player Shapley values of the explained "
            f"probability over image and text), and `{MODALITY_SHARE}` = mean |T̂ − T| [95% CI] #rank group "
            "(a mean of per-example gaps, so not the difference of the two means).")
    rows = [[r["explainer"], _share(r["explainer_text_share"]), _share(r["model_text_share"]), _cell(r)]
            for _, r in ms.iterrows()]
    return f"### modality share\n\n{note}\n\n" + tabulate(
        rows, headers=["explainer", "explainer text share", "model text share", f"{MODALITY_SHARE} ↓"],
        tablefmt="github", disable_numparse=True)


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
            if fam == "modality":
                shares = modality_share_markdown(g, info)
                if shares:
                    tables.append(shares)
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



def agreement_markdown(df: pd.DataFrame) -> str:
    """One matrix per task and measure."""
    parts = ["# Explainer agreement\n\nMean over examples of each pairwise measure (see xbench/agreement.py)."]
    for task, g in df.groupby("task", sort=False):
        names = list(dict.fromkeys(g["a"]))
        for m in MEASURES:
            mat = g.pivot(index="a", columns="b", values=m).reindex(index=names, columns=names)
            table = [[n] + [f"{v:.2f}" if np.isfinite(v) else "–" for v in mat.loc[n]] for n in names]
            parts.append(f"## {task}: {m}\n\n" + tabulate(table, headers=[""] + names, tablefmt="github"))
    return "\n\n".join(parts) + "\n"
