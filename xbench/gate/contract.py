"""Quality contracts: bounds an explainer must meet in a run, checked by ``xbench check --contract``.

A contract is a small YAML file (read with ``yaml.safe_load``)::

    tasks: [synthetic-sentiment]         # optional; default: every task of the run
    explainers:
      integrated_gradients:
        min: {comprehensiveness: 0.3, token_f1: 0.8}   # metric mean >= bound
        max: {sufficiency: 0.25}                        # metric mean <= bound
        max_rank: 3          # overall mean-rank position among the run's explainers, per task
      my_explainer:
        max_rank: {comprehensiveness: 2}   # per metric: the best rank of its rank group <= 2

Every bound is checked on every selected task. ``min``/``max`` apply to the metric's mean over
the examples that succeeded (the leaderboard's ``mean``). ``max_rank: K`` (overall) holds when the
explainer's position, ranking the task's explainers by their overall mean rank over the quality
metrics (``xbench.results.leaderboard.task_summary``: cost is not quality), is <= K (ties share the better
position). ``max_rank: {metric: K}`` holds when the best rank of the explainer's rank group for
that metric (explainers not significantly different share a span such as "2–4": best rank 2) is
<= K.

A metric mean that is NaN (every example failed), or a bound on a cell the run did not score, is a
violation; a cell the run marks as not applicable (an attention explainer on an image task, a
plausibility metric without gold rationales) is skipped and reported as such. A name that is
neither registered nor in the run (a typo) is bad input: :class:`~xbench.core.errors.XBenchError`, one
line naming the file and field (exit code 2 at the CLI), never a silent pass.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from xbench.core.errors import XBenchError
from xbench.core.io import read_yaml
from xbench.results.rundir import RunDir

BOUND_KINDS = ("min", "max", "max_rank")


@dataclass(frozen=True)
class Contract:
    """A validated contract: ``explainers[name] = {"min": {metric: x}, "max": {...},
    "max_rank": K or {metric: K}}``; ``tasks`` None means every task of the run."""

    explainers: dict[str, dict[str, Any]]
    tasks: list[str] | None = None
    where: str = "<contract>"


@dataclass(frozen=True)
class BoundResult:
    """One bound checked on one task. ``metric`` is None for the overall ``max_rank``; ``value``
    is None where the run has no value (not scored); ``ok`` False is a violation; ``skipped``
    names why a bound did not apply (then ``ok`` is True)."""

    task: str
    explainer: str
    metric: str | None
    kind: str
    bound: float
    value: float | None
    ok: bool
    message: str
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["value"] is not None and not math.isfinite(d["value"]):
            d["value"] = None  # JSON has no NaN
        return d

    @property
    def label(self) -> str:
        """``"comprehensiveness min 0.3"`` or ``"overall max_rank 3"``: a test case's name."""
        return f"{self.metric or 'overall'} {self.kind} {_num(self.bound)}"


def _num(v: float) -> str:
    """A bound as written: 3, 0.3, 0.25 (4 significant digits)."""
    v = float(v)
    return str(int(v)) if v.is_integer() else f"{v:.4g}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_rank(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def load_contract(source: str | Path | Mapping[str, Any] | Contract) -> Contract:
    """A contract from a YAML file path or an already-parsed mapping, validated field by field
    (errors name the file and the dotted field). Metric and explainer names are checked against a
    run by :func:`check_contract`, which knows the run's names."""
    if isinstance(source, Contract):
        return source
    if isinstance(source, Mapping):
        data: Any = dict(source)
        where = "<contract>"
    else:
        path = Path(source)
        where = str(path)
        data = read_yaml(path, "contract file")
    if not isinstance(data, dict):
        raise XBenchError(f"{where}: field '(top level)' must be a mapping with 'explainers' (and optionally 'tasks')")
    for k in data:
        if k not in ("tasks", "explainers"):
            raise XBenchError(f"{where}: field '{k}' is not a known field; valid: tasks, explainers")
    tasks = data.get("tasks")
    if tasks is not None:
        if isinstance(tasks, str):
            tasks = [tasks]
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t for t in tasks):
            raise XBenchError(f"{where}: field 'tasks' must be a non-empty list of task names")
    expl = data.get("explainers")
    if not isinstance(expl, dict) or not expl:
        raise XBenchError(f"{where}: field 'explainers' is required: a mapping of explainer names to bounds")
    out: dict[str, dict[str, Any]] = {}
    for name, bounds in expl.items():
        field = f"explainers.{name}"
        if not isinstance(name, str):
            raise XBenchError(f"{where}: field '{field}': explainer names must be strings")
        if not isinstance(bounds, dict) or not bounds:
            raise XBenchError(f"{where}: field '{field}' must map min, max or max_rank to bounds")
        clean: dict[str, Any] = {}
        for kind, val in bounds.items():
            if kind not in BOUND_KINDS:
                raise XBenchError(f"{where}: field '{field}.{kind}' is not a known field; valid: "
                                  f"{', '.join(BOUND_KINDS)}")
            if kind == "max_rank" and not isinstance(val, dict):
                if not _is_rank(val):
                    raise XBenchError(f"{where}: field '{field}.max_rank' must be a positive integer or a "
                                      f"mapping of metric names to positive integers; got {val!r}")
                clean[kind] = val
                continue
            if not isinstance(val, dict) or not val:
                raise XBenchError(f"{where}: field '{field}.{kind}' must map metric names to "
                                  f"{'positive integers' if kind == 'max_rank' else 'numbers'}")
            for metric, b in val.items():
                ok = _is_rank(b) if kind == "max_rank" else _is_number(b)
                if not isinstance(metric, str) or not ok:
                    want = "a positive integer" if kind == "max_rank" else "a finite number"
                    raise XBenchError(f"{where}: field '{field}.{kind}.{metric}' must be {want}; got {b!r}")
            clean[kind] = dict(val)
        out[name] = clean
    return Contract(out, tasks, where)


def _check_names(c: Contract, lb: pd.DataFrame) -> None:
    """Every explainer and metric name must be registered in this process or present in the run."""
    from xbench.core.registry import unknown_name
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric

    run_expl, run_metrics = set(lb["explainer"]), set(lb["metric"])
    known_expl = sorted(run_expl | set(Explainer.registry.names()))
    known_metrics = sorted(run_metrics | set(Metric.registry.names()))
    for name, bounds in c.explainers.items():
        if name not in run_expl and name not in Explainer.registry:
            raise XBenchError(f"{c.where}: field 'explainers.{name}': " + unknown_name("explainer", name, known_expl))
        for kind, val in bounds.items():
            for metric in (val if isinstance(val, dict) else {}):
                if metric not in run_metrics and metric not in Metric.registry:
                    raise XBenchError(f"{c.where}: field 'explainers.{name}.{kind}.{metric}': "
                                      + unknown_name("metric", metric, known_metrics))
    if c.tasks is not None:
        run_tasks = list(dict.fromkeys(lb["task"]))
        for t in c.tasks:
            if t not in run_tasks:
                raise XBenchError(f"{c.where}: field 'tasks': task {t!r} is not in the run; the run has "
                                  f"{', '.join(run_tasks) or '(no tasks)'}")


def _best_rank(group: Any, rank: Any) -> float:
    """The best (smallest) rank of a rank group such as "2–4" (or "2"); NaN for "–" (no mean)."""
    s = str(group)
    head = s.split("–")[0].split("-")[0].strip()
    if head.isdigit():
        return float(head)
    return float(rank) if rank is not None and pd.notna(rank) and s != "–" else float("nan")


def evaluate_contract(run_dir: str | Path, contract: str | Path | Mapping[str, Any] | Contract
                      ) -> list[BoundResult]:
    """Every bound of the contract checked on every selected task of the run (passing, failing and
    skipped ones), in contract order."""
    from xbench.results.leaderboard import load_leaderboard, task_summary

    run = Path(run_dir)
    if not (run / "leaderboard.json").exists():
        raise XBenchError(f"{run}: not a run directory (no leaderboard.json)")
    c = load_contract(contract)
    lb = load_leaderboard(run)
    _check_names(c, lb)
    tinfo = RunDir(run).manifest(required=False).get("tasks", {})
    tasks = c.tasks if c.tasks is not None else list(dict.fromkeys(lb["task"]))
    cells = {(r.task, r.explainer, r.metric): r for r in lb.itertuples(index=False)}
    summary = task_summary(lb)[0] if any("max_rank" in b and not isinstance(b["max_rank"], dict)
                                         for b in c.explainers.values()) else pd.DataFrame()
    positions: dict[tuple[str, str], tuple[float, float]] = {}
    if not summary.empty and "rank_overall" in summary.columns:
        for task, g in summary.groupby("task", sort=False):
            pos = g["rank_overall"].rank(method="min", ascending=True)
            for e, p, m in zip(g["explainer"], pos, g["rank_overall"]):
                positions[(task, e)] = (float(p), float(m))

    out: list[BoundResult] = []
    for task in tasks:
        info = tinfo.get(task, {})
        not_applicable = set(info.get("explainers_not_applicable", []))
        in_task = set(lb.loc[lb["task"] == task, "explainer"])
        for expl, bounds in c.explainers.items():
            for kind in BOUND_KINDS:
                if kind not in bounds:
                    continue
                val = bounds[kind]
                items = list(val.items()) if isinstance(val, dict) else [(None, val)]
                for metric, bound in items:
                    out.append(_one(task, expl, metric, kind, bound, cells, positions, info,
                                    expl in not_applicable, expl in in_task))
    return out


def _one(task: str, expl: str, metric: str | None, kind: str, bound: float, cells: dict, positions: dict,
         info: dict, not_applicable: bool, in_task: bool) -> BoundResult:
    what = f"{task}: {expl} {metric or 'overall rank'}"

    def res(value: float | None, ok: bool, message: str, skipped: str = "") -> BoundResult:
        return BoundResult(task, expl, metric, kind, bound, value, ok, message, skipped)

    if not_applicable:
        return res(None, True, f"{task}: {expl} does not apply to this task (skipped)", "explainer not applicable")
    if not in_task:
        return res(None, False, f"{task}: {expl} was not scored in this run (bound {kind} {_num(bound)})")
    if metric is None:  # overall max_rank
        pos = positions.get((task, expl))
        if pos is None:
            return res(None, False, f"{what}: no overall rank (no quality metric scored; bound max_rank {bound})")
        p, mean_rank = pos
        ok = p <= bound
        rel = "<=" if ok else ">"
        return res(p, ok, f"{task}: {expl} overall rank = {p:.0f} {rel} max_rank {bound} "
                          f"(mean rank {mean_rank:.2f} over the quality metrics)")
    row = cells.get((task, expl, metric))
    if row is None:
        na = info.get("explainers", {}).get(expl, {}).get("metrics_not_applicable", [])
        if metric in na:
            return res(None, True, f"{what}: metric does not apply to this explainer (skipped)",
                       "metric not applicable")
        return res(None, False, f"{what} was not scored in this run (bound {kind} {_num(bound)})")
    if kind == "max_rank":
        best = _best_rank(row.rank_group, row.rank)
        if not math.isfinite(best):
            return res(best, False, f"{what}: no rank (every example failed; bound max_rank {bound})")
        ok = best <= bound
        return res(best, ok, f"{what} rank group {row.rank_group}: best rank {best:.0f} "
                             f"{'<=' if ok else '>'} max_rank {bound}")
    mean = float(row.mean) if row.mean is not None else float("nan")
    if not math.isfinite(mean):
        return res(mean, False, f"{what} = nan: every example failed ({row.n_failed} failed; bound {kind} "
                                f"{_num(bound)})")
    ok = mean >= bound if kind == "min" else mean <= bound
    if ok:
        rel = ">=" if kind == "min" else "<="
    else:
        rel = "<" if kind == "min" else ">"
    return res(mean, ok, f"{what} = {mean:.4g} {rel} {kind} {_num(bound)}")


def check_contract(run_dir: str | Path, contract: str | Path | Mapping[str, Any] | Contract) -> list[BoundResult]:
    """The violated bounds of ``contract`` on the run in ``run_dir``: each names task, explainer,
    metric, value and bound, e.g. ``"synthetic-sentiment: integrated_gradients comprehensiveness =
    0.21 < min 0.3"`` (``.message``). Empty when the run meets the contract."""
    return [b for b in evaluate_contract(run_dir, contract) if not b.ok]
