"""Metrics: one registered class each, with family, direction, range and ideal on the class.

A metric scores one explainer on one task, one value per example. It never calls
the model: ``plan`` submits keep-masks to the shared
:class:`~xbench.perturb.PerturbationEngine`, the runner evaluates every metric's
and every explainer's requests together, and ``score`` reads the results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..registry import Registered, Registry
from ..seeding import np_rng

if TYPE_CHECKING:  # pragma: no cover
    from ..explainers import Explanations
    from ..perturb import PerturbationEngine
    from ..task import Task

FAMILIES = ("faithfulness", "plausibility", "cost", "stability", "sanity", "complexity", "agreement")
EMPTY_RATIONALE = "empty gold rationale"
BAD_ATTRIBUTIONS = "NaN or infinite attributions"
NO_RATIONALE = "no gold rationale"


@dataclass
class Context:
    """What metrics see of one (task, explainer): examples, attributions, targets, the engine."""

    task: "Task"
    expl: "Explanations"
    targets: np.ndarray
    engine: "PerturbationEngine"
    seed: int = 0
    full: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        # the unperturbed inputs: already evaluated for the targets, so the engine dedupes them
        self.full = np.array([self.engine.submit(ex, np.ones(ex.n_features, bool))[0]
                              for ex in self.task.examples])

    @property
    def n(self) -> int:
        return len(self.task.examples)

    def p_target(self, i: int, handles: np.ndarray) -> np.ndarray:
        """Probability of example ``i``'s target class for each engine handle."""
        return self.engine.probs(np.asarray(handles))[:, self.targets[i]]

    def p_full(self, i: int) -> float:
        return float(self.p_target(i, self.full[i:i + 1])[0])

    @cached_property
    def valid(self) -> np.ndarray:
        return np.array([bool(np.all(np.isfinite(a))) for a in self.expl.attributions])

    def order(self, i: int) -> np.ndarray:
        """Features by decreasing attribution; ties broken by a permutation seeded per
        (task, explainer, example, seed), shared by all metrics so their inputs coincide."""
        return self._orders[i]

    @cached_property
    def _orders(self) -> list[np.ndarray]:
        out = []
        for ex, a in zip(self.task.examples, self.expl.attributions):
            rng = np_rng(self.task.name, self.expl.explainer, "order", ex.id, self.seed)
            tie = rng.permutation(len(a))
            out.append(np.lexsort((tie, -np.nan_to_num(a, nan=-np.inf))))
        return out


def k_of(fraction: float, n_features: int) -> int:
    """Number of features in the top ``fraction``: ceil(fraction * F), at least 1, at most F."""
    return int(min(n_features, max(1, math.ceil(fraction * n_features - 1e-9))))


class Metric(Registered):
    """Base class. Subclasses set the metadata below and implement ``plan_one``/``score_one``."""

    registry: ClassVar[Registry["Metric"]] = Registry("metric")
    family: ClassVar[str]
    #: 'higher' or 'lower' is better
    direction: ClassVar[str]
    range: ClassVar[tuple[float, float]]
    ideal: ClassVar[float]
    #: 'rationale' (gold rationale), 'model' (forward passes)
    needs: ClassVar[frozenset[str]] = frozenset({"model"})
    #: the formula, as shown in ``xbench list metrics`` and the README
    formula: ClassVar[str] = ""

    def plan_one(self, ctx: Context, i: int) -> Any:
        return None

    def score_one(self, ctx: Context, i: int, state: Any) -> float:
        raise NotImplementedError

    def plan(self, ctx: Context) -> list[Any]:
        """Submit this metric's perturbations for every example it can score."""
        return [self.plan_one(ctx, i) if self.why_not(ctx, i) is None else None for i in range(ctx.n)]

    def score(self, ctx: Context, states: list[Any]) -> tuple[np.ndarray, list[str | None]]:
        """Per-example values, and per-example failure reasons (None where it succeeded)."""
        values, errors = np.full(ctx.n, np.nan), []
        for i in range(ctx.n):
            err = self.why_not(ctx, i)
            if err is None:
                values[i] = self.score_one(ctx, i, states[i])
                if not np.isfinite(values[i]):
                    err = "metric value is not finite"
            errors.append(err)
        return values, errors

    def why_not(self, ctx: Context, i: int) -> str | None:
        if self.family != "cost" and not ctx.valid[i]:
            return BAD_ATTRIBUTIONS
        if "rationale" in self.needs:
            r = ctx.task.examples[i].rationale
            if r is None:
                return NO_RATIONALE
            if not r.any():
                return EMPTY_RATIONALE
        return None


from . import faithfulness, plausibility, cost  # noqa: E402,F401  (register built-ins)
