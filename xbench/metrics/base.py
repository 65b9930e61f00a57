"""Metrics: one registered class each, with family, direction, range and ideal on the class.

A metric scores one explainer on one task, one value per example. It never calls
the model: ``plan`` submits keep-masks to the shared
:class:`~xbench.features.engine.PerturbationEngine`, every metric's and every explainer's requests
are evaluated together (:mod:`xbench.metrics.scoring`), and ``score`` reads the results.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from xbench.core.registry import Registered, Registry
from xbench.core.seeding import np_rng

if TYPE_CHECKING:  # pragma: no cover
    from xbench.explainers.base import Explainer, Explanations
    from xbench.features.engine import PerturbationEngine
    from xbench.tasks.task import Task

FAMILIES = ("faithfulness", "plausibility", "localisation", "cost", "stability", "sanity", "complexity", "agreement",
            "ground_truth", "modality")
EMPTY_RATIONALE = "empty gold rationale"
BAD_ATTRIBUTIONS = "NaN or infinite attributions"
NO_RATIONALE = "no gold rationale"
#: an example a metric leaves out by design (not a failure): its reason starts with this; the
#: leaderboard counts such rows in ``n_skipped``, and they never make a run exit 2
SKIPPED = "skipped: "


def is_skip(reason: str | None) -> bool:
    return bool(reason) and str(reason).startswith(SKIPPED)


@dataclass
class Context:
    """What metrics see of one (task, explainer): examples, attributions, targets, the engine."""

    task: "Task"
    expl: "Explanations"
    targets: np.ndarray
    engine: "PerturbationEngine"
    seed: int = 0
    #: the explainer that produced ``expl``, for metrics that explain again (stability, sanity)
    explainer: "Explainer | None" = None
    full: np.ndarray = field(init=False)
    #: forward and backward passes :meth:`reexplain` spent on other models, for metric cost
    reexplain_passes: list = field(default_factory=lambda: [0, 0])

    def __post_init__(self) -> None:
        # the unperturbed inputs: already evaluated for the targets, so the engine dedupes them
        self.full = np.array([self.engine.submit(ex, np.ones(ex.n_features, bool))[0]
                              for ex in self.task.examples])

    @property
    def n(self) -> int:
        return len(self.task.examples)

    def reexplain(self, examples: "list[Any] | None" = None, targets: "np.ndarray | None" = None,
                  seed: int | None = None, task: "Task | None" = None, *parts: object) -> "Explanations":
        """Run this context's explainer again: on other examples (perturbed inputs), targets (another
        class), seed, or task (e.g. the same data with a randomised model). ``parts`` name the purpose
        and enter the explainer's per-example seeds, so each re-explanation draws its own randomness.
        Its cost is the metric's, not the explainer's."""
        if self.explainer is None:
            raise RuntimeError("this metric needs the explainer itself (Context.explainer is None)")
        task = task or self.task
        examples = task.examples if examples is None else examples
        targets = self.targets if targets is None else targets
        out = self.explainer.explain(task, examples, [int(t) for t in targets],
                                     self.seed if seed is None else seed, extra_seed=parts)
        if task.model is not self.task.model:  # passes on this task's model are counted by its adapter
            self.reexplain_passes[0] += int(out.forward.sum())
            self.reexplain_passes[1] += int(out.backward.sum())
        return out

    def p_target(self, i: int, handles: np.ndarray) -> np.ndarray:
        """Probability of example ``i``'s target for each engine handle (the task's
        :class:`~xbench.features.protocol.Target`)."""
        return self.task.target.probability(self.engine.probs(np.asarray(handles)), self.targets[i])

    def p_full(self, i: int) -> float:
        return float(self.p_target(i, self.full[i:i + 1])[0])

    def p_target_rows(self, idx: list[int], handles: np.ndarray) -> np.ndarray:
        """Target-class probabilities for a (len(idx), m) array of handles, one row per example."""
        probs = self.engine.probs(handles.ravel()).reshape(*handles.shape, -1)
        return np.take_along_axis(probs, self.targets[idx][:, None, None], axis=2)[..., 0]

    @cached_property
    def valid(self) -> np.ndarray:
        return np.array([bool(np.all(np.isfinite(a))) for a in self.expl.attributions])

    def order(self, i: int) -> np.ndarray:
        """Features by decreasing attribution; ties broken by a permutation seeded per
        (task, explainer, example, seed), shared by all metrics so their inputs coincide."""
        return self._orders[i]

    def top_masks(self, i: int, ks: np.ndarray, part: str | None = None) -> np.ndarray:
        """(len(ks), F) bool: row r marks example i's top ``ks[r]`` features; with ``part`` (a
        multimodal example's 'image' or 'text'), its top ``ks[r]`` features of that part, in the same
        order (:meth:`order` restricted to the part)."""
        ranks = self._ranks[i] if part is None else self._part_ranks(i, part)
        return ranks[None, :] < np.asarray(ks)[:, None]

    def in_part(self, i: int, part: str | None) -> np.ndarray:
        """Boolean mask of example i's features in ``part`` (all of them for None)."""
        ex = self.task.examples[i]
        return np.ones(ex.n_features, bool) if part is None else ex.part_mask(part)

    def part_order(self, i: int, part: str | None) -> np.ndarray:
        """:meth:`order` restricted to ``part``, as indices into the part's features (0..F_part-1)."""
        if part is None:
            return self.order(i)
        inside = self.in_part(i, part)
        local = np.cumsum(inside) - 1
        o = self.order(i)
        return local[o[inside[o]]]

    def _part_ranks(self, i: int, part: str) -> np.ndarray:
        """Each feature's position in :meth:`order` among ``part``'s features; F for the others."""
        inside = self.in_part(i, part)
        o = self.order(i)
        o = o[inside[o]]
        r = np.full(len(inside), len(inside), dtype=np.int64)
        r[o] = np.arange(len(o))
        return r

    @cached_property
    def _ranks(self) -> list[np.ndarray]:
        """Each feature's position in :meth:`order` (0 = highest attribution)."""
        out = []
        for o in self._orders:
            r = np.empty(len(o), dtype=np.int64)
            r[o] = np.arange(len(o))
            out.append(r)
        return out

    @cached_property
    def _orders(self) -> list[np.ndarray]:
        out = []
        for ex, a in zip(self.task.examples, self.expl.attributions):
            rng = np_rng(self.task.name, self.expl.explainer, "order", ex.id, self.seed)
            tie = rng.permutation(len(a))
            out.append(np.lexsort((tie, -np.nan_to_num(a, nan=-np.inf))))
        return out


def k_of(fraction: float, n_features: int) -> int:
    """Number of features in the top ``fraction``: ceil(fraction * F), at least 1, at most F;
    a fraction of exactly 0 gives 0 (the start of a deletion or insertion curve).

    (The 1e-9 keeps float error from rounding up: 0.2 * 15 is 3.0000000000000004.)
    """
    if fraction == 0:
        return 0
    return int(min(n_features, max(1, math.ceil(fraction * n_features - 1e-9))))


def ks_of(fractions: tuple[float, ...], n_features: int) -> np.ndarray:
    """:func:`k_of` for several fractions, memoised per (fractions, F)."""
    key = (fractions, n_features)
    ks = _KS.get(key)
    if ks is None:
        ks = _KS[key] = np.array([k_of(f, n_features) for f in fractions], dtype=np.int64)
    return ks


_KS: dict[tuple[tuple[float, ...], int], np.ndarray] = {}


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
    #: the task modalities the metric applies to (None: every modality)
    modalities: ClassVar[frozenset[str] | None] = None
    #: whether the metric runs the explainer again (on perturbed inputs, other classes or models):
    #: then it does not apply to explainers that cannot (precomputed attributions)
    reexplains: ClassVar[bool] = False
    #: the one modality of a multimodal example the metric is restricted to ('image', 'text'), or None
    #: (every feature); the per-modality metrics of :mod:`xbench.metrics.modality` set it
    part: ClassVar[str | None] = None

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        #: aggregate facts a metric reports beside its per-example values (e.g. the share of
        #: perturbations kept); the runner stores them in the manifest per (task, explainer, metric)
        self.notes: dict[str, Any] = {}
        #: per-example curves a metric exposes beside its value (deletion/insertion: p_j at each step
        #: j), keyed by example index; the runner writes them to ``curves/<task>/<explainer>.npz``
        self.curves: dict[int, np.ndarray] = {}

    def applies_to(self, task: "Task", explainer: "Explainer") -> bool:
        """False where the metric means nothing for this pair (e.g. seed stability of a deterministic
        explainer): then no rows are written, and the manifest lists it as not applicable."""
        if "rationale" in self.needs and not task.spec.rationale:
            return False
        if self.reexplains and not getattr(explainer, "reexplainable", True):
            return False
        return self.modalities is None or task.spec.modality in self.modalities

    def plan_one(self, ctx: Context, i: int) -> Any:
        return None

    def score_one(self, ctx: Context, i: int, state: Any) -> float:
        raise NotImplementedError

    def plan(self, ctx: Context) -> list[Any]:
        """Submit this metric's perturbations for every example it can score. An example whose
        ``plan_one`` raises is that example's failure (its reason is kept), not the run's."""
        self._failed: dict[int, str] = {}
        out = []
        for i in range(ctx.n):
            state = None
            if self.why_not(ctx, i) is None:
                try:
                    state = self.plan_one(ctx, i)
                except Exception as e:  # noqa: BLE001 - one example's failure, counted with its reason
                    self._failed[i] = self.failure(e)
            out.append(state)
        return out

    def failure(self, e: BaseException) -> str:
        """The reason recorded for an example this metric failed on."""
        from xbench.core.registry import one_line

        return f"metric {self.name} failed: {one_line(e)}"

    def score_many(self, ctx: Context, idx: list[int], states: list[Any]) -> np.ndarray:
        """Values for the examples ``idx``; override to vectorise across examples. An example whose
        ``score_one`` raises gets NaN and its reason."""
        out = np.full(len(idx), np.nan)
        for j, i in enumerate(idx):
            try:
                out[j] = self.score_one(ctx, i, states[i])
            except Exception as e:  # noqa: BLE001 - one example's failure, counted with its reason
                self._failed[i] = self.failure(e)
        return out

    def score(self, ctx: Context, states: list[Any]) -> tuple[np.ndarray, list[str | None]]:
        """Per-example values, and per-example failure reasons (None where it succeeded)."""
        failed = self.__dict__.setdefault("_failed", {})
        errors: list[str | None] = [self.why_not(ctx, i) or failed.get(i) for i in range(ctx.n)]
        idx = [i for i, e in enumerate(errors) if e is None]
        values = np.full(ctx.n, np.nan)
        if idx:
            values[idx] = self.score_many(ctx, idx, states)
        for i in idx:
            if i in failed:
                values[i], errors[i] = np.nan, failed[i]
            elif not np.isfinite(values[i]):
                errors[i] = "metric value is not finite"
        return values, errors

    def why_not(self, ctx: Context, i: int) -> str | None:
        if self.family != "cost" and not ctx.valid[i]:
            return ctx.expl.errors[i] or BAD_ATTRIBUTIONS  # the explainer's own reason where it failed
        if "rationale" in self.needs:
            r = ctx.task.examples[i].rationale
            if r is None:
                return NO_RATIONALE
            if not r.any():
                return EMPTY_RATIONALE
        return None

