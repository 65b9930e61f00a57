"""Statistics for leaderboards (bootstrap CIs: :func:`xbench.results.leaderboard.bootstrap_ci`): paired tests, rank groups, anchored scores,
aggregate ranks, Friedman/Nemenyi across tasks, metric agreement and Pareto fronts.

Pure functions over the per-example scores table (columns ``task, explainer, metric, example,
value, error``; see ``xbench.results.leaderboard.SCORE_COLUMNS``). A row *succeeded* when its ``error`` is
empty and its ``value`` is not NaN; failed rows are counted (``n_failed``), never averaged.

Metric metadata (``direction`` 'higher'|'lower', ``ideal``, ``range``, ``family``) comes from an
explicit mapping ``{metric: value}`` when given, else from ``xbench.metrics.Metric.registry``.
Statistical tests come from ``scipy.stats``; the rest is numpy/pandas.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from xbench.core.errors import XBenchError

EN_DASH = "–"
CELL = ["task", "explainer", "metric"]


# --------------------------------------------------------------------------- helpers

def _meta(metrics: Iterable[str], key: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{metric: metadata[key]}`` from ``given`` when supplied, else from the metric registry."""
    out: dict[str, Any] = {}
    for m in dict.fromkeys(metrics):
        if given is not None:
            if m not in given:
                raise XBenchError(f"statistics: no {key} given for metric '{m}'")
            out[m] = given[m]
        else:
            from xbench.metrics.base import Metric

            out[m] = getattr(Metric.registry.get(m), key)
        if key == "direction" and out[m] not in ("higher", "lower"):
            raise XBenchError(f"statistics: metric '{m}': direction must be 'higher' or 'lower', got {out[m]!r}")
    return out


def _ok(scores: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(values as float64, success mask): success = empty error and non-NaN value."""
    missing = [c for c in ("task", "explainer", "metric", "value") if c not in scores.columns]
    if missing:
        raise XBenchError(f"scores table: missing column(s) {', '.join(missing)}")
    values = pd.to_numeric(scores["value"], errors="coerce").to_numpy(dtype=np.float64)
    err = scores["error"].fillna("").astype(str).to_numpy() if "error" in scores.columns else np.full(len(scores), "")
    return values, (err == "") & ~np.isnan(values)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: with p sorted ascending p_(1) <= ... <= p_(m),
    adj_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)). NaN entries are left NaN and not counted in m.

    Written by hand because scipy only ships Benjamini-Hochberg/Yekutieli
    (``scipy.stats.false_discovery_control``, FDR control), not Holm's family-wise correction,
    and statsmodels is not a dependency.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    if len(idx) == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


# --------------------------------------------------------------------------- 2. paired tests

PAIR_FIELDS = ["task", "metric", "explainer_a", "explainer_b", "n_pairs", "mean_diff", "statistic", "p", "p_holm",
               "better", "note"]


def paired_tests(scores: pd.DataFrame, directions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Two-sided Wilcoxon signed-rank test for every explainer pair (a, b) within (task, metric).

    Pairs are the examples where both explainers succeeded; d = value_a - value_b.
    ``scipy.stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")``: zero differences
    are dropped before ranking (Wilcoxon's original rule); the p-value is exact for n <= 50 without
    zeros or ties, else from the normal approximation with scipy's tie correction.
    If every difference is zero, p = 1 (note 'all differences zero'); with no common example,
    p = NaN (note 'no common successful example'). p_holm is Holm-adjusted over all pairs of the
    same (task, metric), NaN p-values excluded from the family. ``mean_diff`` = mean(d);
    ``better`` = the explainer whose mean over the common examples is better in the metric's
    direction ('' when equal or untestable).
    """
    values, ok = _ok(scores)
    if "example" not in scores.columns:
        raise XBenchError("scores table: missing column 'example' (needed to pair explainers)")
    df = pd.DataFrame({"task": scores["task"].to_numpy(), "explainer": scores["explainer"].to_numpy(),
                       "metric": scores["metric"].to_numpy(), "example": scores["example"].astype(str).to_numpy(),
                       "value": np.where(ok, values, np.nan)})
    dup = df.duplicated(CELL + ["example"])
    if dup.any():
        r = df[dup].iloc[0]
        raise XBenchError(f"scores table: example '{r['example']}' appears twice for task '{r['task']}', "
                          f"explainer '{r['explainer']}', metric '{r['metric']}'")
    dirs = _meta(df["metric"], "direction", directions)
    rows = []
    for (task, metric), g in df.groupby(["task", "metric"], sort=False):
        wide = g.pivot(index="example", columns="explainer", values="value")
        expls = list(dict.fromkeys(g["explainer"]))
        block = []
        for a, b in itertools.combinations(expls, 2):
            both = wide[a].notna() & wide[b].notna()
            d = (wide.loc[both, a] - wide.loc[both, b]).to_numpy(dtype=np.float64)
            stat, p, note = np.nan, np.nan, ""
            if len(d) == 0:
                note = "no common successful example"
            elif np.all(d == 0):
                p, note = 1.0, "all differences zero"
            else:
                nz = d[d != 0]
                # scipy's method="auto" switches to a permutation test for small samples with ties or
                # zeros, which takes minutes per pair (e.g. n = 12); we pick the method ourselves:
                # exact when it is exact (no zeros or ties, n <= 50), else the tie-corrected normal
                exact = len(nz) == len(d) and len(d) <= 50 and len(np.unique(np.abs(nz))) == len(nz)
                res = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided",
                                     method="exact" if exact else "asymptotic")
                stat, p = float(res.statistic), float(res.pvalue)
            md = float(d.mean()) if len(d) else np.nan
            better = ""
            if np.isfinite(md) and md != 0:
                better = a if (md > 0) == (dirs[metric] == "higher") else b
            block.append([task, metric, a, b, len(d), md, stat, p, np.nan, better, note])
        adj = holm(np.array([r[7] for r in block], dtype=np.float64))
        for r, q in zip(block, adj):
            r[8] = float(q)
        rows += block
    return pd.DataFrame(rows, columns=PAIR_FIELDS)


# --------------------------------------------------------------------------- 3. rank groups

RANK_FIELDS = ["task", "metric", "explainer", "mean", "rank", "best_rank", "worst_rank", "group", "p_vs_best"]


def _fmt_group(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}{EN_DASH}{hi}"


def rank_groups(cells: pd.DataFrame, tests: pd.DataFrame, directions: Mapping[str, str] | None = None,
                alpha: float = 0.05) -> pd.DataFrame:
    """Per (task, metric): rank explainers by cell mean and give each a rank group.

    ``cells`` has the columns task, metric, explainer and mean (e.g. :func:`xbench.results.leaderboard.summarize` rows), ``tests`` :func:`paired_tests` output. Explainers with a
    NaN mean are left out (rank NaN, group '–'). The others get ``rank`` r = 1..k by mean in the
    metric's better direction (ties broken by explainer name). "j is significantly better than i"
    means p_holm(i, j) < alpha and mean_j is better than mean_i. Then, before smoothing,
        best_i  = 1 + #{j significantly better than i}
        worst_i = k - #{j significantly worse than i}
    so best_i <= r_i <= worst_i. To keep groups monotone along the ranking (a lower-placed explainer
    never gets a better bound than a higher-placed one, which pairwise tests alone cannot
    guarantee), best is replaced by its running maximum from the top and worst by its running
    minimum from the bottom. ``group`` is "best" or "best–worst" (en dash). ``p_vs_best`` is the
    Holm-adjusted p of the test against the rank-1 explainer (NaN for rank 1 itself).
    """
    dirs = _meta(cells["metric"], "direction", directions)
    p_of: dict[tuple[str, str, frozenset[str]], float] = {
        (t, m, frozenset((a, b))): q for t, m, a, b, q in
        tests[["task", "metric", "explainer_a", "explainer_b", "p_holm"]].itertuples(index=False)}
    rows = []
    for (task, metric), g in cells.groupby(["task", "metric"], sort=False):
        sign = 1.0 if dirs[metric] == "higher" else -1.0
        valid = g[g["mean"].notna()]
        for e in g.loc[g["mean"].isna(), "explainer"]:
            rows.append((task, metric, e, np.nan, np.nan, np.nan, np.nan, EN_DASH, np.nan))
        if valid.empty:
            continue
        valid = valid.assign(_s=-sign * valid["mean"]).sort_values(["_s", "explainer"], kind="stable")
        names = valid["explainer"].tolist()
        s = sign * valid["mean"].to_numpy(dtype=np.float64)  # oriented: larger is better
        k = len(names)
        p = np.array([[np.nan if i == j else p_of.get((task, metric, frozenset((a, b))), np.nan)
                       for j, b in enumerate(names)] for i, a in enumerate(names)])
        sig = np.nan_to_num(p, nan=1.0) < alpha
        better = sig & (s[None, :] > s[:, None])  # better[i, j]: j significantly better than i
        worse = sig & (s[None, :] < s[:, None])
        best = np.maximum.accumulate(1 + better.sum(axis=1))
        worst = np.minimum.accumulate((k - worse.sum(axis=1))[::-1])[::-1]
        for r, e in enumerate(names):
            rows.append((task, metric, e, float(valid["mean"].iloc[r]), r + 1, int(best[r]), int(worst[r]),
                         _fmt_group(int(best[r]), int(worst[r])), float(p[r, 0]) if r else np.nan))
    return pd.DataFrame(rows, columns=RANK_FIELDS)


# --------------------------------------------------------------------------- 4. anchored scores

def anchored(cell_means: pd.DataFrame, random_name: str = "random", ideal: Mapping[str, float] | None = None,
             direction: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Random-anchored score a = (s - s_random) / (s_ideal - s_random) per (task, metric).

    ``cell_means`` has columns task, explainer, metric, mean. a = 0 for the random baseline and
    1 for an explainer at the metric's ideal, whatever the direction ('lower' metrics have
    s_ideal < s_random, so the signs cancel); a < 0 means worse than random. Returns the input
    with columns ``anchored`` and ``anchor_note``; a is NaN, with the reason in the note, when the
    task has no ``random_name`` explainer for the metric, s or s_random is not finite, the ideal is
    infinite (e.g. log-odds metrics: no finite scale), s_ideal == s_random, or random is already
    beyond the ideal in the metric's direction.
    """
    ideals = _meta(cell_means["metric"], "ideal", ideal)
    dirs = _meta(cell_means["metric"], "direction", direction)
    df = cell_means.copy()
    rnd = (df[df["explainer"] == random_name].drop_duplicates(["task", "metric"])
           .set_index(["task", "metric"])["mean"])
    key = pd.MultiIndex.from_frame(df[["task", "metric"]])
    s_r = rnd.reindex(key).to_numpy(dtype=np.float64)
    has_r = key.isin(rnd.index)
    s = df["mean"].to_numpy(dtype=np.float64)
    s_i = df["metric"].map(ideals).to_numpy(dtype=np.float64)
    up = (df["metric"].map(dirs) == "higher").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        a = (s - s_r) / (s_i - s_r)
    notes = np.select(
        [~has_r, ~np.isfinite(s_i), ~np.isfinite(s_r), s_i == s_r, np.where(up, s_r > s_i, s_r < s_i),
         ~np.isfinite(s)],
        [f"no '{random_name}' explainer for this task and metric", "ideal is infinite", "random score is not finite",
         "random scores the ideal", "random is beyond the ideal", "score is not finite"], default="")
    df["anchored"] = np.where(notes == "", a, np.nan) + 0.0  # + 0.0: no -0.0 for random itself
    df["anchor_note"] = notes
    return df


# --------------------------------------------------------------------------- 5. aggregate ranks

AGG_FIELDS = ["task", "explainer", "scope", "mean_rank", "metrics"]


def aggregate_ranks(ranks: pd.DataFrame, families: Mapping[str, str] | None = None, weight: str = "family",
                    overall_excludes: Iterable[str] = ("cost",)) -> pd.DataFrame:
    """Mean per-metric rank per (task, explainer): one row per family and one 'overall' row.

    ``ranks`` has columns task, explainer, metric, rank (e.g. :func:`rank_groups` output; NaN
    ranks are skipped). Family row (scope 'family:<f>'): mean of the explainer's ranks over the
    metrics of family f. Overall row: with weight='family' the mean of the family means (every
    family weighs the same however many metrics it has); with weight='metric' the mean over all
    metric ranks. Families in ``overall_excludes`` (default: cost, which is not quality) are left
    out of 'overall'. ``metrics`` lists, sorted, the metrics each row actually averaged.
    """
    if weight not in ("family", "metric"):
        raise XBenchError(f"aggregate_ranks: weight must be 'family' or 'metric', got {weight!r}")
    fam = _meta(ranks["metric"], "family", families)
    df = ranks[["task", "explainer", "metric", "rank"]].dropna(subset=["rank"]).copy()
    df["family"] = df["metric"].map(fam)
    excl = set(overall_excludes)
    rows = []
    for (task, expl), g in df.groupby(["task", "explainer"], sort=False):
        fam_means = {}
        for f, fg in g.groupby("family", sort=True):
            fam_means[f] = float(fg["rank"].mean())
            rows.append((task, expl, f"family:{f}", fam_means[f], sorted(fg["metric"])))
        q = g[~g["family"].isin(excl)]
        if q.empty:
            continue
        if weight == "family":
            val = float(np.mean([v for f, v in fam_means.items() if f not in excl]))
        else:
            val = float(q["rank"].mean())
        rows.append((task, expl, "overall", val, sorted(q["metric"])))
    return pd.DataFrame(rows, columns=AGG_FIELDS)


# --------------------------------------------------------------------------- 6. Friedman / Nemenyi

@dataclass(frozen=True)
class FriedmanResult:
    statistic: float          # scipy's Friedman chi-square (tie-corrected)
    p: float
    k: int                    # explainers
    n: int                    # tasks (blocks) used: those where every explainer has a score
    avg_ranks: pd.Series      # mean within-task rank per explainer, 1 = best
    q_alpha: float            # studentized range quantile / sqrt(2)
    cd: float                 # Nemenyi critical difference of average ranks
    reason: str               # why statistic/p are NaN, else ''


def friedman_nemenyi(rank_table: pd.DataFrame, alpha: float = 0.05, direction: str = "lower") -> FriedmanResult:
    """Friedman test and Nemenyi critical difference across tasks for one score.

    ``rank_table``: rows = tasks (blocks), columns = explainers, values = the chosen score
    (e.g. overall mean rank, lower better: ``direction='lower'``). Tasks with a missing value are
    dropped. Within each task explainers are ranked 1 = best (average ranks for ties);
    ``avg_ranks`` R_j is the mean over the N tasks. ``scipy.stats.friedmanchisquare`` gives the
    statistic (with scipy's tie correction) and p; it needs k >= 3 explainers and N >= 2 tasks,
    else NaN with ``reason``. Nemenyi (Demšar 2006): two explainers differ when |R_i - R_j| > CD,
    CD = q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha = studentized_range.ppf(1 - alpha, k, inf) / sqrt(2).
    """
    if direction not in ("higher", "lower"):
        raise XBenchError(f"friedman_nemenyi: direction must be 'higher' or 'lower', got {direction!r}")
    tab = rank_table.apply(pd.to_numeric, errors="coerce").dropna(axis=0, how="any")
    k, n = tab.shape[1], tab.shape[0]
    oriented = tab if direction == "lower" else -tab
    avg = oriented.rank(axis=1, method="average").mean(axis=0) if n else pd.Series(np.nan, index=tab.columns)
    stat = p = np.nan
    reason = ""
    if k < 3:
        reason = f"Friedman test needs at least 3 explainers, got {k}"
    elif n < 2:
        reason = f"Friedman test needs at least 2 tasks with every explainer scored, got {n}"
    else:
        res = stats.friedmanchisquare(*(tab[c].to_numpy(dtype=np.float64) for c in tab.columns))
        stat, p = float(res.statistic), float(res.pvalue)
    q = cd = np.nan
    if k >= 2 and n >= 1:
        q = float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2))
        cd = float(q * np.sqrt(k * (k + 1) / (6 * n)))
    return FriedmanResult(stat, p, k, n, avg, q, cd, reason)


def cd_groups(avg_ranks: pd.Series, cd: float) -> list[list[str]]:
    """Maximal runs of explainers (sorted by average rank) whose spread of average ranks is < CD —
    the cliques a CD diagram joins with a bar (Demšar 2006). Runs of one and runs contained in an
    earlier run are left out."""
    r = avg_ranks.dropna().sort_values(kind="stable")
    names, vals = list(r.index), r.to_numpy(dtype=np.float64)
    if not np.isfinite(cd):
        return []
    groups: list[list[str]] = []
    last_end = -1
    for i in range(len(vals)):
        j = i
        while j + 1 < len(vals) and vals[j + 1] - vals[i] < cd:
            j += 1
        if j > i and j > last_end:
            groups.append(names[i:j + 1])
            last_end = j
    return groups


# --------------------------------------------------------------------------- 7. metric agreement

@dataclass(frozen=True)
class Agreement:
    pairs: pd.DataFrame      # task, metric_a, metric_b, family_a, family_b, tau, p, n
    families: pd.DataFrame   # task, family_a, family_b, mean_tau, n_pairs
    flags: list[str]         # cross-family pairs with mean tau < 0


def metric_agreement(cell_means: pd.DataFrame, directions: Mapping[str, str] | None = None,
                     families: Mapping[str, str] | None = None, min_explainers: int = 3,
                     exclude_families: Iterable[str] = ("cost",)) -> Agreement:
    """Per task, Kendall tau-b between the explainer orders of every pair of metrics.

    Scores are oriented first (negated for 'lower' metrics) so tau = 1 means both metrics rank
    the explainers the same way, -1 opposite. tau uses ``scipy.stats.kendalltau`` over the
    explainers with finite means for both metrics; NaN when fewer than ``min_explainers`` or a
    constant metric. Metrics of ``exclude_families`` (default: cost, which is expected to trade
    off against quality) are left out. ``families``: mean tau over the metric pairs of each (unordered, sorted)
    family pair, NaN taus skipped. ``flags``: one line per cross-family pair with mean tau < 0.
    """
    dirs = _meta(cell_means["metric"], "direction", directions)
    fams = _meta(cell_means["metric"], "family", families)
    excl = set(exclude_families)
    cell_means = cell_means[~cell_means["metric"].map(fams).isin(excl)]
    rows = []
    for task, g in cell_means.groupby("task", sort=False):
        wide = g.pivot_table(index="explainer", columns="metric", values="mean", aggfunc="first", sort=False)
        for m in wide.columns:
            if dirs[m] == "lower":
                wide[m] = -wide[m]
        for a, b in itertools.combinations(list(wide.columns), 2):
            x, y = wide[a].to_numpy(dtype=np.float64), wide[b].to_numpy(dtype=np.float64)
            both = np.isfinite(x) & np.isfinite(y)
            tau = pv = np.nan
            if both.sum() >= min_explainers and np.ptp(x[both]) > 0 and np.ptp(y[both]) > 0:
                res = stats.kendalltau(x[both], y[both])
                tau, pv = float(res.statistic), float(res.pvalue)
            fa, fb = sorted((fams[a], fams[b]))
            rows.append((task, a, b, fa, fb, tau, pv, int(both.sum())))
    pairs = pd.DataFrame(rows, columns=["task", "metric_a", "metric_b", "family_a", "family_b", "tau", "p", "n"])
    fam_df = (pairs.dropna(subset=["tau"]).groupby(["task", "family_a", "family_b"], sort=False)["tau"]
              .agg(mean_tau="mean", n_pairs="size").reset_index())
    flags = [f"{r.family_a} and {r.family_b} disagree on {r.task} (mean Kendall τ = {r.mean_tau:.2f} over "
             f"{r.n_pairs} metric pair{'s' if r.n_pairs != 1 else ''})"
             for r in fam_df.itertuples() if r.family_a != r.family_b and r.mean_tau < 0]
    return Agreement(pairs, fam_df, flags)


# --------------------------------------------------------------------------- 8. Pareto front

def pareto_front(quality: pd.Series, cost: pd.Series) -> pd.DataFrame:
    """Per task, which explainers are dominated on (quality: higher better, cost: lower better).

    ``quality`` and ``cost`` are Series indexed by (task, explainer). j dominates i when
    q_j >= q_i and c_j <= c_i with at least one strict; exact ties on both leave both on the
    front. Returns columns task, explainer, quality, cost, dominated (nullable boolean; <NA> when
    quality or cost is missing, such rows are not compared) and dominators (sorted names).
    """
    df = pd.concat({"quality": quality, "cost": cost}, axis=1)
    if df.index.nlevels != 2:
        raise XBenchError("pareto_front: quality and cost must be indexed by (task, explainer)")
    df.index.names = ["task", "explainer"]
    df = df.reset_index()
    df["dominated"] = pd.array([pd.NA] * len(df), dtype="boolean")
    df["dominators"] = [[] for _ in range(len(df))]
    for _, g in df.groupby("task", sort=False):
        g = g[g["quality"].notna() & g["cost"].notna()]
        q, c = g["quality"].to_numpy(dtype=np.float64), g["cost"].to_numpy(dtype=np.float64)
        # dom[i, j]: j dominates i
        dom = (q[None, :] >= q[:, None]) & (c[None, :] <= c[:, None]) & \
              ((q[None, :] > q[:, None]) | (c[None, :] < c[:, None]))
        names = g["explainer"].to_numpy()
        for row, i in zip(g.index, range(len(g))):
            df.at[row, "dominated"] = bool(dom[i].any())
            df.at[row, "dominators"] = sorted(names[dom[i]].tolist())
    return df
