"""``xbench check``: a regression gate for explainers, and quality contracts, for CI.

:func:`compare` puts a new run beside a baseline run, cell by cell (task, explainer, metric):

- **paired test** (``test = 'wilcoxon'``): on the examples both runs scored successfully, the
  per-example differences d = new − baseline go through the two-sided Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon`` with the method choice of :func:`xbench.results.stats.paired_tests`: exact
  without zeros or ties for n <= 50, else the tie-corrected normal approximation). The p-values of
  all compared cells (identical cells count, with p = 1) are Holm-corrected together
  (:func:`xbench.results.stats.holm`): ``p_holm``. ``delta`` = s · mean(d), s = +1 for higher-is-better
  metrics and −1 for lower-is-better ones, so a positive delta is an improvement.
- **identical** (``test = 'identical'``): bitwise-identical per-example scores (same examples, same
  values, same errors) are ``unchanged`` with p = 1; no test is needed.
- **CI fallback** (``test = 'ci'``): when the runs share no successfully scored example, or the
  baseline has no ``scores.csv`` (e.g. only a committed ``leaderboard.json``), the new 95%
  bootstrap CI of the mean is compared with the baseline's (both from ``leaderboard.json``): the
  change counts as significant when the two intervals do not overlap. ``delta`` = s · (new mean −
  baseline mean); p is not defined (NaN).

A cell is ``regressed`` only when the change is significant (p_holm < alpha, or disjoint CIs) **and**
delta <= −min_effect; ``improved`` when significant and delta >= +min_effect; else ``unchanged``.
The minimum effect is absolute, on the metric's own scale: :data:`DEFAULT_MIN_EFFECT` = 0.02 (two
points of a [0, 1] metric such as comprehensiveness or token F1), or per metric
(``{"comprehensiveness": 0.05}``; metrics not named keep the default). It keeps a significant but
negligible change (many examples make tiny shifts significant) from failing a build.

Cells in only one run are ``missing`` (in the baseline only) or ``new`` (in the new run only); a
cell whose every example failed in the new run is ``missing`` too. A missing cell fails the gate:
the new run lost coverage (an explainer that crashed or was dropped, a metric that no longer
applies), and a regression could otherwise hide by disappearing. Cost metrics (family ``cost``:
seconds, forward and backward passes) are compared and reported but do not fail the gate unless
``include_cost`` (``--include-cost``): timings are machine- and load-dependent.

Exit codes of ``xbench check``: 0 nothing regressed or missing and every contract bound holds; 1 a
regression, a missing cell or a violated bound; 2 bad input (one line on stderr).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from xbench.core.errors import XBenchError
from xbench.core.io import atomic_write_text
from xbench.gate.contract import BoundResult, evaluate_contract
from xbench.results.rundir import RunDir

DEFAULT_MIN_EFFECT = 0.02
CELL = ["task", "explainer", "metric"]
CELL_FIELDS = CELL + ["family", "direction", "baseline_mean", "new_mean", "delta", "min_effect", "n_paired",
                      "test", "p", "p_holm", "verdict", "gate", "fails", "note"]
VERDICTS = ("regressed", "missing", "improved", "new", "unchanged")


# --------------------------------------------------------------------------- inputs

def resolve_run(path: str | Path, what: str = "run") -> Path:
    """A run directory from a directory or a path to its ``leaderboard.json``."""
    p = Path(path)
    if p.is_file() or p.suffix == ".json":
        if not p.is_file():
            raise XBenchError(f"{p}: {what} leaderboard file not found")
        p = p.parent
    if not p.is_dir():
        raise XBenchError(f"{p}: {what} directory not found")
    if not (p / "leaderboard.json").exists():
        raise XBenchError(f"{p}: not a run directory (no leaderboard.json)")
    return p


def _scores(run: Path) -> pd.DataFrame | None:
    from xbench.results.leaderboard import read_scores

    path = run / "scores.csv"
    if not path.exists():
        return None
    try:
        df = read_scores(path)
    except (ValueError, pd.errors.ParserError) as e:
        raise XBenchError(f"{path}: unreadable scores table ({str(e).splitlines()[0]})") from None
    missing = [c for c in CELL + ["example", "value", "error"] if c not in df.columns]
    if missing:
        raise XBenchError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def min_effects(min_effect: float | Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """(default, per-metric) minimum effects from a number or a {metric: effect} mapping (the key
    ``"*"`` sets the default)."""
    if isinstance(min_effect, Mapping):
        per = {str(k): float(v) for k, v in min_effect.items()}
        default = per.pop("*", DEFAULT_MIN_EFFECT)
    else:
        default, per = float(min_effect), {}
    for k, v in [("default", default), *per.items()]:
        if not math.isfinite(v) or v < 0:
            raise XBenchError(f"--min-effect {k}: must be a finite number >= 0, got {v}")
    return default, per


# --------------------------------------------------------------------------- compare

def _cell_arrays(df: pd.DataFrame) -> dict[tuple[str, str, str], tuple[np.ndarray, ...]]:
    """Per (task, explainer, metric): (example ids, values, errors, success mask), sorted by example
    id (one sort and one grouping for the whole table: per-cell pandas work is slow on 10^5 rows)."""
    df = df.sort_values(CELL + ["example"], kind="stable")
    ex = df["example"].astype(str).to_numpy(object)
    val = pd.to_numeric(df["value"], errors="coerce").to_numpy(np.float64)
    err = df["error"].fillna("").astype(str).to_numpy(object)
    ok = (err == "") & ~np.isnan(val)
    return {k: (ex[i], val[i], err[i], ok[i]) for k, i in df.groupby(CELL, sort=False).indices.items()}


def _identical(b: tuple[np.ndarray, ...], n: tuple[np.ndarray, ...]) -> bool:
    """Same examples, bitwise-same values (NaN equal to NaN) and the same errors."""
    return len(b[0]) == len(n[0]) and bool((b[0] == n[0]).all()) and bool((b[2] == n[2]).all()) \
        and np.array_equal(b[1], n[1], equal_nan=True)


def compare(baseline_dir: str | Path, run_dir: str | Path,
            min_effect: float | Mapping[str, float] = DEFAULT_MIN_EFFECT, alpha: float = 0.05,
            include_cost: bool = False) -> pd.DataFrame:
    """One row per (task, explainer, metric) of either run, with :data:`CELL_FIELDS`: the means,
    the signed ``delta`` (positive = better), ``n_paired``, ``test`` ('wilcoxon', 'identical',
    'ci' or '' for missing/new cells), ``p``, ``p_holm``, ``verdict`` (improved, unchanged,
    regressed, missing, new), ``gate`` (the cell counts for the gate: not cost, or include_cost)
    and ``fails`` (gate and verdict regressed or missing). See the module docstring."""
    from xbench.results.leaderboard import load_leaderboard
    from xbench.results.stats import holm, paired_tests

    if not (0 < alpha < 1):
        raise XBenchError(f"--alpha must be in (0, 1), got {alpha}")
    default_me, per_me = min_effects(min_effect)
    base, run = resolve_run(baseline_dir, "baseline"), resolve_run(run_dir)
    lb_b, lb_n = load_leaderboard(base), load_leaderboard(run)
    for lb in (lb_b, lb_n):  # JSON null (every example failed) -> NaN
        for col in ("mean", "ci_low", "ci_high", "n", "n_failed"):
            lb[col] = pd.to_numeric(lb[col], errors="coerce")
    sc_b, sc_n = _scores(base), _scores(run)
    paired = sc_b is not None and sc_n is not None

    cells = lb_b.merge(lb_n, on=CELL, how="outer", suffixes=("_b", "_n"), indicator=True, sort=False)
    # order: the baseline's cells as listed, then the new run's new cells
    order: dict[tuple, int] = {}
    for k in [*zip(lb_b["task"], lb_b["explainer"], lb_b["metric"]), *zip(lb_n["task"], lb_n["explainer"],
                                                                           lb_n["metric"])]:
        order.setdefault(k, len(order))
    cells["_order"] = [order[k] for k in zip(cells["task"], cells["explainer"], cells["metric"])]
    cells = cells.sort_values("_order", kind="stable").reset_index(drop=True)

    groups_b = _cell_arrays(sc_b) if paired else {}
    groups_n = _cell_arrays(sc_n) if paired else {}

    rows: list[dict[str, Any]] = []
    to_test: list[pd.DataFrame] = []  # per-example rows of the cells that need a Wilcoxon test
    for i, c in cells.iterrows():
        key = (c["task"], c["explainer"], c["metric"])
        family = c["family_b"] if isinstance(c["family_b"], str) else c["family_n"]
        direction = c["direction_b"] if isinstance(c["direction_b"], str) else c["direction_n"]
        me = per_me.get(c["metric"], default_me)
        r = {"task": key[0], "explainer": key[1], "metric": key[2], "family": family, "direction": direction,
             "baseline_mean": c["mean_b"], "new_mean": c["mean_n"], "delta": np.nan, "min_effect": me,
             "n_paired": 0, "test": "", "p": np.nan, "p_holm": np.nan, "verdict": "unchanged",
             "gate": bool(family != "cost" or include_cost), "note": ""}
        rows.append(r)
        sign = 1.0 if direction == "higher" else -1.0
        if c["_merge"] == "left_only":
            r.update(verdict="missing", note="in the baseline only")
            continue
        if c["_merge"] == "right_only":
            r.update(verdict="new", note="in the new run only")
            continue
        nf_b, nf_n = int(c["n_failed_b"]), int(c["n_failed_n"])
        notes = [f"n_failed {nf_b} → {nf_n}"] if nf_n != nf_b else []
        fin_b, fin_n = np.isfinite(c["mean_b"]), np.isfinite(c["mean_n"])
        if not fin_n:
            r.update(verdict="missing" if fin_b else "unchanged",
                     note="; ".join(notes + ["no successful example in the new run"
                                             + ("" if fin_b else " nor in the baseline")]))
            continue
        if not fin_b:
            r.update(verdict="new", note="; ".join(notes + ["no successful example in the baseline"]))
            continue
        if paired:
            gb, gn = groups_b.get(key), groups_n.get(key)
            if gb is not None and gn is not None and _identical(gb, gn):
                r.update(test="identical", p=1.0, delta=0.0, n_paired=int(gb[3].sum()), note="; ".join(notes))
                continue
            if gb is not None and gn is not None:
                common, ib, in_ = np.intersect1d(gb[0][gb[3]], gn[0][gn[3]], return_indices=True)
                if len(common):
                    vb, vn = gb[1][gb[3]][ib], gn[1][gn[3]][in_]
                    d = vn - vb
                    r.update(test="wilcoxon", n_paired=len(common), delta=sign * float(d.mean()))
                    # one (task, metric) group per cell with two "explainers", so that paired_tests
                    # gives this cell's test alone, with the project's method choice
                    tid = f"cell{i}"
                    to_test.append(pd.DataFrame({
                        "task": tid, "explainer": ["baseline"] * len(common) + ["new"] * len(common),
                        "metric": key[2], "example": np.concatenate([common, common]),
                        "value": np.concatenate([vb, vn]), "error": ""}))
                    r["_tid"] = tid
                    r["note"] = "; ".join(notes)
                    continue
            notes.append("no example scored in both runs")
        else:
            notes.append("baseline has no scores.csv" if sc_b is None else "run has no scores.csv")
        # CI fallback: disjoint 95% CIs
        disjoint = c["ci_low_n"] > c["ci_high_b"] or c["ci_high_n"] < c["ci_low_b"]
        r.update(test="ci", delta=sign * float(c["mean_n"] - c["mean_b"]),
                 note="; ".join(notes + [f"95% CIs {'disjoint' if disjoint else 'overlap'}: baseline "
                                         f"[{c['ci_low_b']:.4g}, {c['ci_high_b']:.4g}], new "
                                         f"[{c['ci_low_n']:.4g}, {c['ci_high_n']:.4g}]"]))
        r["_disjoint"] = bool(disjoint)

    if to_test:
        tests = paired_tests(pd.concat(to_test, ignore_index=True),
                             directions={r["metric"]: r["direction"] for r in rows})
        p_of = dict(zip(tests["task"], tests["p"]))
        for r in rows:
            if "_tid" in r:
                r["p"] = float(p_of[r.pop("_tid")])
    tested = [r for r in rows if r["test"] in ("wilcoxon", "identical")]
    for r, q in zip(tested, holm(np.array([r["p"] for r in tested], dtype=np.float64))):
        r["p_holm"] = float(q)

    for r in rows:
        if r["test"] in ("wilcoxon", "ci"):
            significant = r.pop("_disjoint") if r["test"] == "ci" else bool(r["p_holm"] < alpha)
            if significant and r["delta"] >= r["min_effect"] and r["delta"] > 0:
                r["verdict"] = "improved"
            elif significant and r["delta"] <= -r["min_effect"] and r["delta"] < 0:
                r["verdict"] = "regressed"
        r["fails"] = bool(r["gate"] and r["verdict"] in ("regressed", "missing"))
    return pd.DataFrame(rows, columns=CELL_FIELDS)


# --------------------------------------------------------------------------- result and outputs

@dataclass
class CheckResult:
    """What ``xbench check`` found: the compared cells (None without a baseline), the contract's
    bounds (None without a contract), and the exit code (0 pass, 1 fail)."""

    cells: pd.DataFrame | None
    bounds: list[BoundResult] | None
    baseline: Path | None
    run: Path
    alpha: float = 0.05
    min_effect: tuple[float, dict[str, float]] = (DEFAULT_MIN_EFFECT, {})
    include_cost: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def violations(self) -> list[BoundResult]:
        return [b for b in self.bounds or [] if not b.ok]

    @property
    def failing_cells(self) -> pd.DataFrame:
        return self.cells[self.cells["fails"]] if self.cells is not None else pd.DataFrame(columns=CELL_FIELDS)

    @property
    def exit_code(self) -> int:
        return 1 if len(self.failing_cells) or self.violations else 0

    def counts(self) -> dict[str, int]:
        if self.cells is None:
            return {}
        vc = self.cells["verdict"].value_counts()
        return {v: int(vc.get(v, 0)) for v in VERDICTS}

    def failure_messages(self) -> list[str]:
        out = [cell_message(r) for r in self.failing_cells.to_dict("records")]
        return out + [b.message for b in self.violations]


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def cell_message(r: Mapping[str, Any]) -> str:
    """One line for a compared cell, e.g. ``linear: noisy_ig comprehensiveness regressed: 0.52 → 0.41
    (delta -0.11, min effect 0.02; wilcoxon p_holm 3e-06, n = 40)``."""
    head = f"{r['task']}: {r['explainer']} {r['metric']} {r['verdict']}"
    if r["verdict"] in ("missing", "new") and not r["test"]:
        return f"{head} ({r['note']})"
    if r["test"] == "ci":
        stat = "95% CIs compared"
    elif r["test"] == "identical":
        stat = f"identical per-example scores, n = {r['n_paired']}"
    else:
        stat = f"{r['test']} p_holm {_f(r['p_holm'], 2)}, n = {r['n_paired']}"
    return (f"{head}: {_f(r['baseline_mean'])} → {_f(r['new_mean'])} (delta {_f(r['delta'], 3)}, min effect "
            f"{_f(r['min_effect'])}; {stat})" + (f"; {r['note']}" if r["note"] else ""))


def to_text(res: CheckResult, show_all: bool = False) -> str:
    """The report printed to stdout: a table of the changed cells (every cell with ``show_all``),
    the counts, the contract's bounds and the verdict."""
    from tabulate import tabulate

    parts = []
    if res.cells is not None:
        parts.append(f"baseline {res.baseline}\nrun      {res.run}")
        shown = res.cells if show_all else res.cells[res.cells["verdict"] != "unchanged"]
        if len(shown):
            table = [[r["task"], r["explainer"], r["metric"] + ("" if r["gate"] else " (cost, not gated)"),
                      _f(r["baseline_mean"]), _f(r["new_mean"]), _f(r["delta"], 3), r["n_paired"], r["test"] or "–",
                      _f(r["p_holm"], 2), r["verdict"].upper() if r["fails"] else r["verdict"]]
                     for r in shown.to_dict("records")]
            parts.append(tabulate(table, headers=["task", "explainer", "metric", "baseline", "new", "delta",
                                                  "n", "test", "p_holm", "verdict"], tablefmt="simple"))
        c = res.counts()
        ungated = res.cells[~res.cells["gate"].astype(bool)]["verdict"].value_counts()

        def count(v: str) -> str:  # "3 regressed (all in cost metrics, not gated)" reads as what it is
            k = int(ungated.get(v, 0)) if v in ("regressed", "missing") else 0
            note = "" if not k else (" (all in cost metrics, not gated)" if k == c[v]
                                     else f" ({k} in cost metrics, not gated)")
            return f"{c[v]} {v}{note}"

        parts.append(f"{len(res.cells)} cells: " + ", ".join(count(v) for v in VERDICTS if c[v])
                     + f" (alpha {res.alpha}, min effect {res.min_effect[0]:g}"
                     + "".join(f", {k} {v:g}" for k, v in res.min_effect[1].items())
                     + ("; cost metrics gated" if res.include_cost else "; cost metrics not gated") + ")")
    if res.bounds is not None:
        rows = [[b.task, b.explainer, b.label, _f(b.value), "skipped" if b.skipped else ("ok" if b.ok else "VIOLATED")]
                for b in res.bounds]
        parts.append("contract\n" + tabulate(rows, headers=["task", "explainer", "bound", "value", "status"],
                                             tablefmt="simple"))
    parts += [f"note: {n}" for n in res.notes]
    fails = res.failure_messages()
    if fails:
        parts.append(f"FAIL: {len(fails)} problem(s)\n" + "\n".join(f"  {m}" for m in fails))
    else:
        parts.append("PASS")
    return "\n\n".join(parts) + "\n"


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def to_json(res: CheckResult) -> dict[str, Any]:
    """Machine-readable result: ``status`` ('pass'|'fail'), ``exit_code``, the settings, ``counts``,
    ``cells`` (CELL_FIELDS, NaN as null), ``contract`` (bounds and violations) and ``failures``
    (one line each)."""
    cells = None if res.cells is None else [{k: _json_value(v) for k, v in r.items()}
                                           for r in res.cells.to_dict("records")]
    contract = None if res.bounds is None else {
        "bounds": [b.to_dict() for b in res.bounds], "violations": [b.to_dict() for b in res.violations]}
    return {"xbench_check": 1, "status": "fail" if res.exit_code else "pass", "exit_code": res.exit_code,
            "baseline": None if res.baseline is None else str(res.baseline), "run": str(res.run),
            "alpha": res.alpha, "min_effect": {"default": res.min_effect[0], "per_metric": res.min_effect[1]},
            "include_cost": res.include_cost, "counts": res.counts(), "cells": cells, "contract": contract,
            "failures": res.failure_messages(), "notes": res.notes}


def _xml_text(s: Any) -> str:
    """Text XML 1.0 can hold: ElementTree escapes <, & and quotes, but writes control characters
    as they are, which makes the file unparsable; they become U+FFFD."""
    return "".join(ch if ch in "\t\n\r" or (0x20 <= ord(ch) <= 0xD7FF) or (0xE000 <= ord(ch) <= 0xFFFD)
                   or 0x10000 <= ord(ch) <= 0x10FFFF else "\ufffd" for ch in str(s))


def to_junit(res: CheckResult) -> str:
    """JUnit XML: a ``regression`` test suite with one test case per compared cell
    (classname ``xbench.<task>.<explainer>``, name = the metric) and a ``contract`` suite with one
    per bound; regressions, missing cells and violated bounds carry ``<failure message=...>``,
    skipped bounds ``<skipped>``. Everything is escaped by ElementTree."""
    root = ET.Element("testsuites", name="xbench check")
    total = fails = 0

    def suite(name: str) -> ET.Element:
        return ET.SubElement(root, "testsuite", name=name)

    def case(parent: ET.Element, classname: str, name: str, failure: str | None, detail: str,
             skipped: str = "") -> None:
        tc = ET.SubElement(parent, "testcase", classname=_xml_text(classname), name=_xml_text(name), time="0")
        if failure is not None:
            f = ET.SubElement(tc, "failure", message=_xml_text(failure), type="xbench")
            f.text = _xml_text(detail)
        elif skipped:
            ET.SubElement(tc, "skipped", message=_xml_text(skipped))
        else:
            ET.SubElement(tc, "system-out").text = _xml_text(detail)

    if res.cells is not None:
        s = suite("xbench regression")
        n_f = 0
        for r in res.cells.to_dict("records"):
            msg = cell_message(r)
            case(s, f"xbench.{r['task']}.{r['explainer']}", r["metric"], msg if r["fails"] else None,
                 msg if r["fails"] else msg + ("" if r["gate"] else " (cost metric: not gated)"))
            n_f += bool(r["fails"])
        s.set("tests", str(len(res.cells)))
        s.set("failures", str(n_f))
        total, fails = total + len(res.cells), fails + n_f
    if res.bounds is not None:
        s = suite("xbench contract")
        n_f = 0
        for b in res.bounds:
            case(s, f"xbench.{b.task}.{b.explainer}", b.label, None if b.ok else b.message, b.message,
                 b.skipped)
            n_f += not b.ok
        s.set("tests", str(len(res.bounds)))
        s.set("failures", str(n_f))
        s.set("skipped", str(sum(bool(b.skipped) for b in res.bounds)))
        total, fails = total + len(res.bounds), fails + n_f
    for s in root:
        s.set("errors", "0")
    root.set("tests", str(total))
    root.set("failures", str(fails))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --------------------------------------------------------------------------- run

def check(run_dir: str | Path, baseline: str | Path | None = None, contract: Any = None,
          min_effect: float | Mapping[str, float] = DEFAULT_MIN_EFFECT, alpha: float = 0.05,
          include_cost: bool = False) -> CheckResult:
    """Compare ``run_dir`` with ``baseline`` (when given) and evaluate ``contract`` on it (when given)."""
    if baseline is None and contract is None:
        raise XBenchError("xbench check needs --baseline or --contract")
    run = resolve_run(run_dir)
    res = CheckResult(None, None, None, run, alpha, min_effects(min_effect), include_cost)
    if baseline is not None:
        res.baseline = resolve_run(baseline, "baseline")
        res.cells = compare(res.baseline, run, min_effect, alpha, include_cost)
        differs = config_differences(res.baseline, run)
        if differs:
            res.notes.append("the runs' configurations differ in " + ", ".join(differs)
                             + ": cells are compared where both runs have them")
    if contract is not None:
        res.bounds = evaluate_contract(run, contract)
    return res


def config_differences(a: Path, b: Path) -> list[str]:
    """Top-level fields of the two manifests' ``config`` that differ (n, seed, tasks, explainers, ...);
    none when either run has no readable config."""
    try:
        ca, cb = RunDir(a).config(), RunDir(b).config()
    except XBenchError:
        return []
    return [k for k in dict.fromkeys([*ca, *cb]) if ca.get(k) != cb.get(k)]


def rerun_baseline(baseline: Path, out: Path, progress: bool = False, runtime: dict | None = None) -> Path:
    """Run the baseline's configuration (``manifest.json``'s ``config``) again into ``out``; plugins
    re-imported, relative data paths resolved against the baseline's task files."""
    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner

    rd = RunDir(baseline)
    if not rd.exists():
        raise XBenchError(f"{rd.manifest_path}: cannot rerun the baseline without its manifest.json "
                          f"(or name the new run: xbench check --baseline B RUN_DIR)")
    from xbench.run.repro import restore_inputs

    restore_inputs(rd.path)
    cfg = RunConfig.from_manifest(rd.manifest(), str(rd.manifest_path), rd.path)
    cfg.runtime.update(runtime or {})
    Runner(cfg, out, progress=progress).run()
    return out


def parse_min_effect(values: list[str] | None) -> float | dict[str, float]:
    """``--min-effect 0.05`` (every metric) and/or ``--min-effect comprehensiveness=0.1`` (one metric)."""
    if not values:
        return DEFAULT_MIN_EFFECT
    out: dict[str, float] = {}
    for v in values:
        name, sep, num = v.rpartition("=")
        try:
            x = float(num)
        except ValueError:
            raise XBenchError(f"--min-effect {v!r}: expected a number or METRIC=NUMBER") from None
        if sep and not name:
            raise XBenchError(f"--min-effect {v!r}: expected METRIC=NUMBER")
        out[name if sep else "*"] = x
    if sep_free := [k for k in out if k != "*"]:
        from xbench.metrics.base import Metric

        for k in sep_free:
            Metric.registry.get(k)  # a typo is an error, not a silently ignored threshold
    return out if set(out) != {"*"} else out["*"]


def cli(args: argparse.Namespace) -> int:
    """``xbench check`` (see :func:`add_arguments`)."""
    min_effect = parse_min_effect(args.min_effect)
    if args.baseline is None and args.contract is None:
        raise XBenchError("xbench check needs --baseline BASELINE and/or --contract FILE")
    if args.run_dir is None:
        if args.baseline is None:
            raise XBenchError("--contract without --baseline needs RUN_DIR (the run to check)")
        base = resolve_run(args.baseline, "baseline")
        from xbench.run.runner import default_out

        out = Path(args.out) if args.out else default_out("check")
        print(f"running the baseline's configuration into {out}/ ...", file=sys.stderr)
        run = rerun_baseline(base, out, progress=not args.no_progress and sys.stderr.isatty())
    else:
        run = Path(args.run_dir)
    res = check(run, args.baseline, args.contract, min_effect, args.alpha, args.include_cost)
    print(to_text(res, show_all=args.all), end="")
    if args.json:
        atomic_write_text(args.json, json.dumps(to_json(res), indent=2) + "\n")
    if args.junit:
        atomic_write_text(args.junit, to_junit(res))
    return res.exit_code


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                   help="the run to check (default: run the baseline's configuration first, into --out)")
    p.add_argument("--baseline", metavar="BASELINE",
                   help="baseline run directory, or its leaderboard.json (without scores.csv beside it, "
                        "cells are compared by their 95%% CIs)")
    p.add_argument("--contract", metavar="FILE", help="quality contract (YAML): min/max/max_rank bounds")
    p.add_argument("--min-effect", action="append", metavar="X|METRIC=X",
                   help=f"smallest change (absolute, on the metric's scale) that counts as a regression or "
                        f"improvement; repeatable; default {DEFAULT_MIN_EFFECT}")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm (default 0.05)")
    p.add_argument("--include-cost", action="store_true",
                   help="let cost metrics (seconds, passes) fail the gate too")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one test case per cell and per bound)")
    p.add_argument("--out", metavar="DIR", help="where the rerun goes without RUN_DIR (default runs/check-<time>)")
    p.add_argument("--all", action="store_true", help="list unchanged cells too")
    p.add_argument("--no-progress", action="store_true", help="no progress bars during the rerun")
