"""Plan -> engine -> score: how a task's metrics are computed for its explainers, in one place.

Every metric first *plans* (submits the perturbed inputs it needs to the task's
:class:`~xbench.features.engine.PerturbationEngine`), then one deduplicated, batched engine pass
evaluates what every metric of every explainer asked for, then every metric *scores* (reads the
results). The runner, the ERASER export, the Python API and the tests all go through
:class:`Scoring` (or :func:`score_explanations`, its one-call form); none of them talks to the
engine or the metrics' plan/score methods directly.

What one metric costs on one (task, explainer) is measured around its plan and score calls
(:class:`MetricCost`): seconds, forward and backward passes it made itself, and the inputs it was
first to submit to the shared pass.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from xbench.core.progress import bar
from xbench.metrics.base import Context, Metric

if TYPE_CHECKING:  # pragma: no cover
    from xbench.explainers.base import Explainer, Explanations
    from xbench.features.engine import PerturbationEngine
    from xbench.tasks.task import Task


class MetricCost:
    """What one metric costs on one (task, explainer), measured around its plan and score calls.

    ``inputs_new`` are the inputs it was first to submit to the shared engine: the forward passes
    it caused in the deduplicated pass (an input another metric or explainer already asked for
    is free). ``forward_passes`` adds the passes it made itself (re-explanations, searches)."""

    def __init__(self, task: "Task", ctx: Context) -> None:
        self.task, self.ctx = task, ctx
        self.seconds = 0.0
        self.forward = self.backward = self.requested = self.new = 0

    def __enter__(self) -> "MetricCost":
        e, m = self.ctx.engine, self.task.model
        self._start = (time.perf_counter(), m.n_forward, m.n_backward, e.n_requested, e.n_unique,
                       self.ctx.reexplain_passes[0], self.ctx.reexplain_passes[1])
        return self

    def __exit__(self, *exc: object) -> None:
        t, f, b, r, u, rf, rb = self._start
        e, m, (cf, cb) = self.ctx.engine, self.task.model, self.ctx.reexplain_passes
        self.seconds += time.perf_counter() - t
        # passes on this task's model (engine runs, re-explanations) plus re-explanations on others
        self.forward += (m.n_forward - f) + (cf - rf)
        self.backward += (m.n_backward - b) + (cb - rb)
        self.requested += e.n_requested - r
        self.new += e.n_unique - u

    def summary(self) -> dict[str, Any]:
        n = max(1, self.ctx.n)
        return {"seconds_per_example": self.seconds / n, "forward_passes_per_example": self.forward / n,
                "backward_passes_per_example": self.backward / n, "inputs_requested": self.requested,
                "inputs_new": self.new, "note": "seconds exclude the shared engine pass; inputs_new are "
                                                "the forward passes this metric added to it"}


@dataclass
class MetricResult:
    """One metric's per-example values on one (task, explainer), with the reason for each missing
    value (None where it succeeded), its notes, per-example curves (deletion/insertion) and cost."""

    metric: Metric
    values: np.ndarray
    errors: list[str | None]
    notes: dict[str, Any]
    curves: dict[int, np.ndarray]
    cost: dict[str, Any]

    @property
    def name(self) -> str:
        return self.metric.name


@dataclass
class Planned:
    """One explainer's explanations on a task, with its applicable metrics planned on the engine."""

    explainer: str
    explanations: "Explanations"
    context: Context
    metrics: list[Metric]
    #: metrics that mean nothing for this (task, explainer) pair: no rows are written for them
    not_applicable: list[str]
    states: list[Any] = field(default_factory=list)
    meters: dict[str, MetricCost] = field(default_factory=dict)
    results: list[MetricResult] = field(default_factory=list)
    #: metrics whose ``plan`` raised: metric name -> the reason every example of it fails with
    broken: dict[str, str] = field(default_factory=dict)


class Scoring:
    """Plan, run and score the metrics of one task (module docstring).

    ``plan`` each explainer's explanations, ``run`` the engine once, then ``score`` each plan (in any
    order, one at a time, so a caller can write each explainer's results before scoring the next).
    Metrics that search (normalised AOPC bounds) or sample (infidelity) may add inputs while scoring;
    they run the engine themselves."""

    def __init__(self, task: "Task", targets: np.ndarray, engine: "PerturbationEngine", seed: int = 0) -> None:
        self.task, self.targets, self.engine, self.seed = task, np.asarray(targets), engine, seed

    def plan(self, explanations: "Explanations", metrics: Sequence[Metric],
             explainer: "Explainer | None" = None) -> Planned:
        """Submit every applicable metric's perturbations for one explainer's explanations. Metrics keep
        per-run state (notes, curves): give each plan its own instances."""
        task = self.task
        applicable = [m for m in metrics if m.applies_to(task, explainer)]
        ctx = Context(task, explanations, self.targets, self.engine, self.seed, explainer)
        planned = Planned(explanations.explainer, explanations, ctx, applicable,
                          [m.name for m in metrics if m not in applicable])
        planned.meters = {m.name: MetricCost(task, ctx) for m in applicable}
        planned.broken = {}
        for m in applicable:
            with planned.meters[m.name]:
                try:
                    planned.states.append(m.plan(ctx))
                except Exception as e:  # noqa: BLE001 - a metric that cannot plan fails its examples, not the run
                    planned.broken[m.name] = m.failure(e)
                    planned.states.append(None)
        return planned

    def run(self, progress: bool = False) -> dict[str, Any]:
        """The shared engine pass over everything planned so far: inputs requested, unique inputs
        evaluated, forward passes and seconds."""
        model = self.task.model
        f0, t0, r0, u0 = model.n_forward, time.perf_counter(), self.engine.n_requested, self.engine.n_unique
        self.engine.run(progress=progress)
        return {"requested": self.engine.n_requested - r0, "unique": self.engine.n_unique - u0,
                "forward_passes": model.n_forward - f0, "seconds": round(time.perf_counter() - t0, 3)}

    def score(self, planned: Planned, progress: bool = False) -> list[MetricResult]:
        """Every planned metric's values for one explainer (after :meth:`run`)."""
        out = []
        items = zip(planned.metrics, planned.states)
        if progress:
            items = bar(list(items), f"scoring {planned.explainer}", len(planned.metrics), "metric")
        n = planned.context.n
        for m, states in items:
            why = planned.broken.get(m.name)
            if why is None:
                with planned.meters[m.name]:
                    try:
                        values, errors = m.score(planned.context, states)
                    except Exception as e:  # noqa: BLE001 - as in plan: every example fails with the reason
                        why = m.failure(e)
            if why is not None:
                values, errors = np.full(n, np.nan), [why] * n
            out.append(MetricResult(m, values, errors, dict(m.notes), dict(m.curves), {}))
        for r in out:
            r.cost = planned.meters[r.name].summary()
        planned.results = out
        return out


def score_explanations(task: "Task", explanations: Sequence["Explanations"], metrics: Sequence[Metric],
                       targets: np.ndarray | None = None, seed: int = 0,
                       explainers: Sequence["Explainer | None"] | None = None,
                       engine: "PerturbationEngine | None" = None, progress: bool = False) -> list[Planned]:
    """Score explanations of one task with metrics in one call: plan every (explanations, metric), one
    engine pass, score. ``targets`` default to the task's (the prediction, or the label with
    ``target: label``); ``explainers`` (one per explanations, or None) are needed by metrics that
    explain again. The metric instances given score the first explanations (their ``notes`` and
    ``curves`` are those); each further explanations gets fresh copies. Returns one :class:`Planned`
    per explanations, its ``results`` filled."""
    from xbench.tasks.task import targets_for

    engine = engine or task.engine()
    if targets is None:
        targets, _, _ = targets_for(task, engine)
    scoring = Scoring(task, targets, engine, seed)
    explainers = list(explainers) if explainers is not None else [None] * len(explanations)
    plans = [scoring.plan(e, metrics if k == 0 else [type(m)(**m.p) for m in metrics], x)
             for k, (e, x) in enumerate(zip(explanations, explainers))]
    scoring.run(progress)
    for p in plans:
        scoring.score(p, progress)
    return plans
