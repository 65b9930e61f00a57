"""Figures for a run: cost–faithfulness Pareto plot, metric-agreement heatmap, critical-difference
diagram and per-example token heatmaps.

matplotlib's object-oriented API only (``matplotlib.figure.Figure`` + ``savefig``): no pyplot, no
global backend switch. Every figure is written as PNG and SVG atomically (:func:`xbench.core.io.atomic_write`)
with ``svg.fonttype = 'none'`` so labels stay searchable text in the SVG. Text that comes from data
(explainer, metric, task names, dataset tokens) is drawn with ``parse_math=False`` and ``usetex`` off,
so a ``$`` is never read as mathtext.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from xbench.core.io import atomic_write
from xbench.core.progress import bar
from xbench.results.stats import cd_groups  # noqa: F401  (re-exported: the CD diagram draws these groups)

_RC = {"svg.fonttype": "none", "text.usetex": False, "svg.hashsalt": "xbench", "font.size": 9}
FORMATS = ("png", "svg")


def _stem(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(s)).strip("_") or "plot"


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.png`` and ``.svg`` (atomic); return the paths."""
    paths = []
    with matplotlib.rc_context(_RC):
        for fmt in FORMATS:
            p = Path(out_dir) / f"{_stem(stem)}.{fmt}"
            atomic_write(p, lambda f, fmt=fmt: fig.savefig(f, format=fmt, dpi=100, bbox_inches="tight",
                                                           metadata={"Date": None} if fmt == "svg" else None),
                         mode="wb")
            paths.append(p)
    return paths


# --------------------------------------------------------------------------- 1. cost vs quality

def cost_quality(summary: pd.DataFrame, task: str, out_dir: Path) -> list[Path]:
    """Seconds per example (log x) vs mean random-anchored faithfulness, one labelled point per
    explainer of ``task``; the cost–faithfulness Pareto front (``dominated`` False) is highlighted
    and joined by a step line. ``summary``: :func:`xbench.results.leaderboard.task_summary` ``[0]``."""
    g = summary[summary["task"] == task]
    g = g[np.isfinite(g["seconds"].astype(float)) & np.isfinite(g["faithfulness_anchored"].astype(float))
          & (g["seconds"].astype(float) > 0)]
    if g.empty:  # no anchored score (a run without the random control) or no timing: nothing to draw
        return []
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.5, 4.5))
        ax = fig.add_subplot()
        dom = g["dominated"].fillna(True).astype(bool) if "dominated" in g else pd.Series(True, index=g.index)
        rest, front = g[dom], g[~dom].sort_values("seconds")
        ax.scatter(rest["seconds"], rest["faithfulness_anchored"], c="0.55", s=28, label="dominated", zorder=2)
        ax.scatter(front["seconds"], front["faithfulness_anchored"], c="tab:red", s=46, marker="D",
                   label="Pareto front", zorder=3)
        if len(front) > 1:
            ax.step(front["seconds"], front["faithfulness_anchored"], where="post", c="tab:red", lw=1.2, zorder=1)
        for _, r in g.iterrows():
            ax.annotate(str(r["explainer"]), (r["seconds"], r["faithfulness_anchored"]), xytext=(4, 3),
                        textcoords="offset points", fontsize=8, parse_math=False)
        ax.set_xscale("log")
        ax.set_xlabel("seconds per example (log scale)")
        ax.set_ylabel("faithfulness, random-anchored (0 = random, 1 = ideal)")
        ax.set_title(f"{task}: cost vs faithfulness", parse_math=False)
        ax.grid(alpha=0.3, which="both")
        if len(g):
            ax.legend(loc="lower right", fontsize=8)
        return _save(fig, out_dir, f"cost_quality_{task}")


# --------------------------------------------------------------------------- 2. agreement heatmap

def agreement_heatmap(pairs: pd.DataFrame, task: str, out_dir: Path) -> list[Path]:
    """Kendall τ between the explainer orders of every pair of metrics of ``task`` (from
    :func:`xbench.results.stats.metric_agreement` ``.pairs``), symmetric, τ = 1 on the diagonal, NaN grey;
    diverging colormap centred on 0 (vmin −1, vmax 1), each cell annotated with τ."""
    g = pairs[pairs["task"] == task]
    metrics = list(dict.fromkeys(list(g["metric_a"]) + list(g["metric_b"])))
    idx = {m: i for i, m in enumerate(metrics)}
    k = len(metrics)
    mat = np.full((k, k), np.nan)
    np.fill_diagonal(mat, 1.0)
    for r in g.itertuples():
        mat[idx[r.metric_a], idx[r.metric_b]] = mat[idx[r.metric_b], idx[r.metric_a]] = r.tau
    with matplotlib.rc_context(_RC):
        side = max(4.0, 0.42 * k + 2.5)
        fig = Figure(figsize=(side + 1.2, side))
        ax = fig.add_subplot()
        cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.85")
        im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, vmin=-1, vmax=1)
        ax.set_xticks(range(k))
        ax.set_xticklabels(metrics, rotation=60, ha="right", fontsize=7, parse_math=False)
        ax.set_yticks(range(k))
        ax.set_yticklabels(metrics, fontsize=7, parse_math=False)
        for i in range(k):
            for j in range(k):
                v = mat[i, j]
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                        fontsize=6 if k > 12 else 8, color="white" if np.isfinite(v) and abs(v) > 0.6 else "black",
                        parse_math=False)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Kendall τ")
        ax.set_title(f"{task}: metric agreement (Kendall τ over explainers)", parse_math=False)
        return _save(fig, out_dir, f"agreement_{task}")


# --------------------------------------------------------------------------- 3. critical difference

def cd_diagram(result, out_dir: Path, name: str = "cd") -> tuple[list[Path], list[list[str]]]:
    """Critical-difference diagram of a :class:`xbench.results.stats.FriedmanResult`: rank axis 1..k
    (1 = best, left), each explainer at its average rank with its label, a bar of length CD,
    and thick bars joining explainers not significantly different (see :func:`cd_groups`).
    Returns (paths, groups drawn)."""
    r = result.avg_ranks.dropna().sort_values(kind="stable")
    k = max(int(result.k), len(r), 2)
    groups = cd_groups(r, result.cd)
    names, vals = list(r.index), r.to_numpy(dtype=np.float64)
    half = (len(names) + 1) // 2
    with matplotlib.rc_context(_RC):
        height = 1.6 + 0.28 * max(half, len(names) - half) + 0.15 * len(groups)
        fig = Figure(figsize=(8, height))
        ax = fig.add_subplot()
        ax.set_axis_off()
        # y: 0 is the rank axis, negative goes down
        ax.plot([1, k], [0, 0], c="k", lw=1)
        for t in range(1, k + 1):
            ax.plot([t, t], [0, 0.12], c="k", lw=1)
            ax.text(t, 0.2, str(t), ha="center", va="bottom", fontsize=8)
        if np.isfinite(result.cd):
            ax.plot([1, 1 + result.cd], [0.75, 0.75], c="k", lw=1.5)
            for x in (1, 1 + result.cd):
                ax.plot([x, x], [0.67, 0.83], c="k", lw=1.5)
            ax.text(1 + result.cd / 2, 0.88, f"CD = {result.cd:.2f}", ha="center", va="bottom", fontsize=8)
        n_g = len(groups)
        label_top = -0.35 - 0.22 * n_g
        for i, (e, v) in enumerate(zip(names, vals)):
            left = i < half
            y = label_top - 0.3 * (i if left else len(names) - 1 - i)
            x_end = 0.6 if left else k + 0.4
            ax.plot([v, v, x_end], [0, y, y], c="0.3", lw=0.8)
            ax.text(x_end + (-0.05 if left else 0.05), y, f"{e} ({v:.2f})", ha="right" if left else "left",
                    va="center", fontsize=8, parse_math=False)
        for gi, grp in enumerate(groups):
            lo, hi = float(r[grp[0]]), float(r[grp[-1]])
            y = -0.2 - 0.22 * gi
            ax.plot([lo - 0.03, hi + 0.03], [y, y], c="k", lw=4, solid_capstyle="round")
        ax.set_xlim(-1.2, k + 2.2)
        ax.set_ylim(label_top - 0.3 * half - 0.2, 1.2)
        title = f"Friedman p = {result.p:.3g}, N = {result.n} tasks" if np.isfinite(result.p) else result.reason
        ax.set_title(title, fontsize=9, parse_math=False)
        return _save(fig, out_dir, name), groups


# --------------------------------------------------------------------------- 4. token heatmap

def token_heatmap(tokens: Sequence[str], scores: Sequence[float], gold: Sequence[int] | None, out_dir: Path,
                  name: str, line_chars: int = 70) -> list[Path]:
    """One example's tokens as boxes coloured by attribution (diverging colormap, symmetric around
    0: ±max |score|), gold-rationale tokens (``gold[i]`` truthy) underlined. Tokens are drawn as
    plain text (monospace, no mathtext), wrapped at ``line_chars`` characters."""
    s = np.asarray(scores, dtype=np.float64)
    if len(s) != len(tokens) or (gold is not None and len(gold) != len(tokens)):
        from xbench.core.errors import XBenchError
        raise XBenchError(f"token_heatmap {name}: tokens, scores and gold must have the same length")
    vmax = float(np.nanmax(np.abs(s))) if len(s) and np.isfinite(s).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    norm, cmap = Normalize(-vmax, vmax), matplotlib.colormaps["RdBu_r"]
    # layout in character units (monospace): by hand, matplotlib has no flowing-text layout
    pos, x, line = [], 0, 0
    for t in tokens:
        w = max(len(str(t)), 1)
        if x and x + w > line_chars:
            x, line = 0, line + 1
        pos.append((x, line, w))
        x += w + 1
    n_lines = line + 1
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(0.105 * line_chars + 1.6, 0.42 * n_lines + 1.0))
        ax = fig.add_subplot()
        ax.set_axis_off()
        for i, (t, (x0, ln, w)) in enumerate(zip(tokens, pos)):
            y = -ln
            colour = cmap(norm(s[i])) if np.isfinite(s[i]) else (0.85, 0.85, 0.85, 1.0)
            ax.text(x0, y, str(t), family="monospace", fontsize=9, va="center", ha="left", parse_math=False,
                    usetex=False, bbox=dict(boxstyle="square,pad=0.15", fc=colour, ec="none"))
            if gold is not None and gold[i]:
                ax.plot([x0, x0 + w], [y - 0.32, y - 0.32], c="k", lw=1.2)
        ax.set_xlim(-0.5, line_chars + 0.5)
        ax.set_ylim(-n_lines + 0.4, 0.6)
        fig.colorbar(ScalarMappable(norm, cmap), ax=ax, fraction=0.03, pad=0.02, label="attribution")
        ax.set_title(f"{name} (underlined: gold rationale)", fontsize=9, parse_math=False)
        return _save(fig, out_dir, name)


# --------------------------------------------------------------------------- 5. deletion / insertion curves

def curve_band(values: np.ndarray, *key: object, n_resamples: int = 1000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, ci_low, ci_high) per step of per-example curves ``values`` (n, L), NaN rows (unscored
    examples) left out; 95% percentile bootstrap of the mean per step (scipy.stats.bootstrap along
    axis 0, one seeded draw of resamples shared by every step)."""
    from scipy import stats

    from xbench.core.seeding import np_rng

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v).all(axis=1)]
    if len(v) == 0:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan, nan
    mean = v.mean(axis=0)
    if len(v) == 1:
        return mean, mean.copy(), mean.copy()
    res = stats.bootstrap((v,), np.mean, axis=0, n_resamples=n_resamples, method="percentile", vectorized=True,
                          rng=np_rng("curve_band", *key))
    lo, hi = res.confidence_interval
    # a step where every example has the same value has a degenerate (NaN) interval: the value itself
    return mean, np.where(np.isfinite(lo), lo, mean), np.where(np.isfinite(hi), hi, mean)


def curve_plot(curves: dict[str, np.ndarray], metric: str, task: str, out_dir: Path,
               auc: dict[str, float] | None = None) -> list[Path]:
    """Mean target probability p_j at step j of ``metric`` (a deletion or insertion curve), one line
    per explainer with its 95% bootstrap band, against the nominal fraction j/S of features removed
    (deletion) or kept (insertion); the legend gives each explainer's score ``auc`` (the metric's
    mean over examples, from the leaderboard) where given. ``curves``:
    explainer -> per-example curves (n, S + 1) as the runner writes them to ``curves/``."""
    inserting = "insertion" in metric
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.5, 4.5))
        ax = fig.add_subplot()
        colours = matplotlib.colormaps["tab10"]
        for c, (expl, values) in enumerate(curves.items()):
            mean, lo, hi = curve_band(values, task, metric, expl)
            x = np.linspace(0, 1, len(mean))
            style = dict(c="0.3", ls="--") if expl == "random" else dict(c=colours(c % 10))
            label = expl if not auc or expl not in auc else f"{expl} ({auc[expl]:.3f})"
            ax.plot(x, mean, lw=1.4, label=label, **style)
            ax.fill_between(x, lo, hi, alpha=0.15, color=style["c"], lw=0)
        ax.set_xlabel(("fraction of features kept, most important first" if inserting
                       else "fraction of features removed, most important first") + " (j / S)")
        ax.set_ylabel("p(target class), mean with 95% CI")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{task}: {metric} curves" + (" (legend: mean AUC)" if auc else ""), parse_math=False)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right" if not inserting else "lower right")
        return _save(fig, out_dir, f"curve_{task}_{metric}")


def read_curves(run_dir: Path, task: str) -> dict[str, dict[str, np.ndarray]]:
    """metric -> explainer -> per-example curves (n, L), from ``run_dir/curves/<task>/*.npz``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for f in sorted((Path(run_dir) / "curves" / task).glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            for k in z.files:
                if k != "ids":
                    out.setdefault(k, {})[f.stem] = z[k]
    return out


# --------------------------------------------------------------------------- 5. a run's plots

def write_plots(run_dir: Path, lb: pd.DataFrame | None = None, summary: pd.DataFrame | None = None) -> list[Path]:
    """All plots of a run under ``run_dir/plots/``: per task the cost–faithfulness plot, the
    deletion/insertion curves, the metric-agreement heatmap and a token heatmap, and across tasks
    a CD diagram on the overall mean rank (only with >= 2 tasks and >= 3 explainers scored on every
    task). ``lb`` and ``summary`` (:func:`xbench.results.leaderboard.task_summary`) are read or computed
    when not given. Returns the files written."""
    from xbench.results.leaderboard import load_leaderboard, task_summary
    from xbench.results.stats import friedman_nemenyi, metric_agreement

    run_dir = Path(run_dir)
    out = run_dir / "plots"
    lb = load_leaderboard(run_dir) if lb is None else lb
    files: list[Path] = []
    if lb.empty:
        return files
    summary = task_summary(lb)[0] if summary is None else summary
    quality = lb[lb["family"] != "cost"]
    pairs = metric_agreement(quality[["task", "explainer", "metric", "mean"]], dict(zip(lb["metric"], lb["direction"])),
                             dict(zip(lb["metric"], lb["family"]))).pairs if len(quality) else pd.DataFrame()
    for task in bar(list(dict.fromkeys(lb["task"])), "plots", unit="task"):
        if {"seconds", "faithfulness_anchored"} <= set(summary.columns):
            files += cost_quality(summary, task, out)
        if len(pairs) and (pairs["task"] == task).any():
            files += agreement_heatmap(pairs, task, out)
    for task in dict.fromkeys(lb["task"]):
        for metric, per_explainer in read_curves(run_dir, task).items():
            order = [e for e in dict.fromkeys(summary.loc[summary["task"] == task, "explainer"]) if e in per_explainer]
            rows = lb[(lb["task"] == task) & (lb["metric"] == metric)]
            files += curve_plot({e: per_explainer[e] for e in order + sorted(set(per_explainer) - set(order))},
                                metric, task, out, dict(zip(rows["explainer"], rows["mean"])))
        files += example_heatmap(run_dir, task, summary, out)
    if "rank_overall" in summary.columns:
        tab = summary.pivot_table(index="task", columns="explainer", values="rank_overall", sort=False)
        tab = tab.dropna(axis=1, how="any")
        if tab.shape[0] >= 2 and tab.shape[1] >= 3:
            files += cd_diagram(friedman_nemenyi(tab, direction="lower"), out, "cd_overall")[0]
    return files


def example_heatmap(run_dir: Path, task: str, summary: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Token heatmap of a text task's first example for its best explainer by overall mean rank
    (from ``examples/<task>.json`` and ``explanations/<task>/<explainer>.npz``); none for other
    modalities or runs without those files."""
    import json

    ex_file = Path(run_dir) / "examples" / f"{task}.json"
    if not ex_file.exists():
        return []
    data = json.loads(ex_file.read_text())
    if data.get("modality") != "text" or not data["examples"]:
        return []
    mine = summary[summary["task"] == task]
    names = [e for e in mine["explainer"] if e != "random"] if len(mine) else []
    for expl in names:
        f = Path(run_dir) / "explanations" / task / f"{expl}.npz"
        if f.exists():
            break
    else:
        return []
    with np.load(f, allow_pickle=False) as z:
        a = z["flat"][:int(z["lengths"][0])]
    ex = data["examples"][0]
    return token_heatmap(ex["features"], a, ex["rationale"], out_dir, f"tokens_{task}_{expl}_{ex['id']}")
