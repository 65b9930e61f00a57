"""The Quantus bridge: any Quantus 0.6 metric as an xbench metric, named ``quantus:<ClassName>``.

``quantus:PointingGame``, ``quantus:PixelFlipping``, ``quantus:MaxSensitivity`` ... resolve through
:func:`quantus_metric` (registered with ``Metric.registry.add_prefix``). A suite gives the Quantus
constructor's parameters::

    metrics:
      - quantus:PointingGame: {abs: true}
      - quantus:PixelFlipping: {features_in_step: 8, perturb_baseline: 0.0}

What is passed to Quantus, per batch of examples (``examples_per_call``, default 64):

- ``x_batch`` (N, C, H, W): the examples' inputs ``ex.x``; ``channel_first=True``;
- ``a_batch`` (N, 1, H, W): the explainer's one score per feature, given to every pixel of that
  feature through ``ex.feature_ids`` (image features are pixels, so this is the pixel map);
- ``s_batch`` (N, 1, H, W): the gold rationale's pixels (localisation metrics only);
- ``y_batch``: the context's targets; ``model``: the task's ``torch.nn.Module`` (Quantus wraps it in
  its ``PyTorchModel``, with its own per-metric ``softmax`` default unless ``softmax`` is given);
- ``explain_func``: for metrics that explain again (robustness, randomisation, e.g. MaxSensitivity,
  MPRT, RandomLogit) it runs the context's explainer (``Context.reexplain``) on the new inputs, on
  the model Quantus hands it (the task's, or Quantus's randomised copy), and returns pixel maps.
  Unchanged inputs (MPRT, RandomLogit) are explained with the original examples' seeds (common random
  numbers, as xbench's own sanity metrics); changed inputs (noise) get seeds of their own.

Conventions that change numbers (each tested in ``tests/test_quantus_bridge.py``):

- **Per-example values.** Quantus normalises attributions (``normalise_by_max``) over its whole
  batch by default, which would make an example's value depend on the others beside it. Unless the
  suite sets ``normalise_func_kwargs``, the bridge passes ``normalise_axes`` = every axis but the
  batch's, so each explanation is divided by its own max|a| (what Quantus does to a batch of one).
  Deterministic metrics then give the same value for an example whatever batch it is in.
- **Randomness.** Quantus draws from numpy's (and torch's) global RNG. Each call runs inside
  :func:`~xbench.core.seeding.isolated_global_rng` seeded by (task, metric, the batch's example ids, run
  seed) -- not the explainer, so every explainer meets the same noise (a paired comparison) -- and the
  caller's global state is restored. An example's draws depend on its batch; ``examples_per_call: 1``
  makes them depend on the example alone (slower: Quantus then loops in Python per example).
- **Curves.** Metrics that return a curve per example (PixelFlipping, RegionPerturbation,
  Selectivity) are reduced to its area, trapezoid rule with unit spacing: Quantus's own
  ``calculate_auc``/``get_auc_score`` (computed here with ``scipy.integrate.trapezoid``: Quantus 0.6
  calls ``np.trapz``, which numpy 2.4 removed).
- **Layers.** Metrics that return ``{layer: per-example scores}`` (MPRT, SmoothMPRT with their
  defaults) are reduced to the mean over the randomised layers (the ``original`` entry left out;
  Quantus's own ``return_average_correlation`` keeps it in because it skips a key named ``orig``);
  the per-layer means go to the metric's notes. ``return_average_correlation`` or
  ``return_last_correlation`` in the suite makes Quantus reduce instead.
- **Failures.** Constant attributions (e.g. all zero) fail the example, as Quantus refuses them; a
  Quantus exception on a batch is retried example by example, and the examples that still fail get
  the exception as their error; a NaN or infinite value is a per-example error too.
- **Cost.** A forward hook on the task's module counts the rows Quantus passes through it directly
  (Quantus calls the module, not the adapter) and adds them to the adapter's forward count, so the
  manifest's metric cost includes them; rows through Quantus's randomised copies count as passes on
  other models; re-explanations are counted by the explainer's adapter as usual. Backward passes are
  those of re-explanations (Quantus itself takes no gradients).
- **Not bridged** (one score per example is what xbench stores): metrics that compare examples
  with each other or score a whole batch (Consistency, Sufficiency, SensitivityN, ROAD), Focus (it
  needs mosaics), and the MPRT alias ModelParameterRandomisation. IROF needs ``np.trapz``.
- **Modalities.** Images only (Quantus's ``data_applicability`` must include images); Quantus's
  localisation asserts need (N, 1, H, W) masks, which tabular rows do not have.

Direction and category come from Quantus (``score_direction``, ``evaluation_category``), except
RegionPerturbation: its curve is the drop of the target score as the most relevant patches go, so a
larger area is better (Quantus 0.6 marks it "lower"); only ``order: morf`` is accepted for it.
Ranges and ideals are known for Quantus's default similarity, ``abs`` and ``softmax`` settings; other
metrics get (−∞, ∞) and the ideal at the better infinity.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import warnings
from dataclasses import replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator

import numpy as np

from xbench.core.errors import XBenchError
from xbench.core.registry import unknown_name
from xbench.core.seeding import derive_seed, isolated_global_rng
from xbench.metrics.base import Context, Metric

if TYPE_CHECKING:  # pragma: no cover
    from xbench.features.dense import DenseExample

PREFIX = "quantus"
INF = math.inf
CONSTANT = "constant attributions: Quantus refuses them (nothing to rank)"

#: Quantus EvaluationCategory value -> xbench family
FAMILY = {"Faithfulness": "faithfulness", "Localisation": "localisation", "Complexity": "complexity",
          "Robustness": "stability", "Randomisation": "sanity", "Axiomatic": "sanity"}
#: Quantus DataType values the bridge can feed, -> xbench modality
MODALITY = {"image": "image"}
UNSUPPORTED = {
    "ModelParameterRandomisation": "it is Quantus's deprecated alias of MPRT; use 'quantus:MPRT'",
    "Consistency": "it scores an example against the other examples of its batch, not on its own",
    "Sufficiency": "it scores an example against the other examples of its batch, not on its own",
    "BatchSufficiency": "it scores an example against the other examples of its batch, not on its own",
    "SensitivityN": "it returns one correlation per subset size over the whole batch, not one per example",
    "ROAD": "it returns one curve for the whole batch, not one score per example",
    "Focus": "it needs mosaics of several classes (custom_batch), which xbench tasks do not build",
}
#: where xbench's direction differs from Quantus's score_direction, and why (see the module doc)
DIRECTION = {"RegionPerturbation": "higher"}
#: (range, ideal) with Quantus's default settings
META: dict[str, tuple[tuple[float, float], float]] = {
    "AUC": ((0.0, 1.0), 1.0), "PointingGame": ((0.0, 1.0), 1.0), "RelevanceRankAccuracy": ((0.0, 1.0), 1.0),
    "TopKIntersection": ((0.0, 1.0), 1.0), "RelevanceMassAccuracy": ((-INF, INF), 1.0),
    "AttributionLocalisation": ((-INF, INF), 1.0),
    "Sparseness": ((0.0, 1.0), 1.0), "Complexity": ((0.0, INF), 0.0), "EffectiveComplexity": ((0.0, INF), 0.0),
    "Completeness": ((0.0, 1.0), 1.0), "InputInvariance": ((0.0, 1.0), 1.0), "NonSensitivity": ((0.0, INF), 0.0),
    "Monotonicity": ((0.0, 1.0), 1.0), "FaithfulnessCorrelation": ((-1.0, 1.0), 1.0),
    "FaithfulnessEstimate": ((-1.0, 1.0), 1.0), "MonotonicityCorrelation": ((-1.0, 1.0), 1.0),
    "Infidelity": ((0.0, INF), 0.0), "PixelFlipping": ((0.0, INF), 0.0), "Selectivity": ((0.0, INF), 0.0),
    "MaxSensitivity": ((0.0, INF), 0.0), "AvgSensitivity": ((0.0, INF), 0.0),
    "LocalLipschitzEstimate": ((0.0, INF), 0.0), "RelativeInputStability": ((0.0, INF), 0.0),
    "RelativeOutputStability": ((0.0, INF), 0.0), "RelativeRepresentationStability": ((0.0, INF), 0.0),
    "MPRT": ((-1.0, 1.0), 0.0), "SmoothMPRT": ((-1.0, 1.0), 0.0), "RandomLogit": ((-1.0, 1.0), -1.0),
    "EfficientMPRT": ((0.0, INF), INF),
}
#: constructor arguments the bridge sets itself
FORCED = {"disable_warnings": True, "display_progressbar": False, "return_aggregate": False}
HIDDEN = {"self", "args", "kwargs", "default_plot_func", "aggregate_func", "return_auc_per_sample", *FORCED}
#: the bridge's own parameters (not Quantus's)
BRIDGE_PARAMS: dict[str, Any] = {"softmax": None, "examples_per_call": 64}


@lru_cache(maxsize=1)
def quantus_classes() -> dict[str, type]:
    """Quantus's metric classes by class name (imports quantus: several seconds, done on first use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import quantus
            from quantus.metrics.base import Metric as QuantusBase
        except ImportError as e:  # pragma: no cover - quantus is a dependency
            raise XBenchError(f"metric prefix 'quantus:' needs the quantus package ({e})") from None
    return {n: c for n, c in vars(quantus.metrics).items()
            if inspect.isclass(c) and issubclass(c, QuantusBase) and c is not QuantusBase}


@lru_cache(maxsize=1)
def quantus_functions() -> dict[str, Callable]:
    """Functions a suite may name for a callable parameter (``similarity_func: correlation_spearman``)."""
    import importlib

    quantus_classes()
    out: dict[str, Callable] = {}
    for kind in ("similarity_func", "perturb_func", "normalise_func", "norm_func", "complexity_func",
                 "discretise_func", "loss_func", "n_bins_func"):
        mod = importlib.import_module(f"quantus.functions.{kind}")
        out.update({n: f for n, f in vars(mod).items()
                    if inspect.isfunction(f) and f.__module__ == mod.__name__ and not n.startswith("_")})
    return out


def is_function_param(name: str, default: Any) -> bool:
    """Whether a Quantus constructor parameter takes a callable (its default is one, or None and its
    name says so). String-valued ones such as Infidelity's ``loss_func='mse'`` stay strings."""
    if callable(default):
        return True
    return default is None and (name.endswith("_func") or name in ("norm_numerator", "norm_denominator"))


def quantus_metric(name: str) -> type["QuantusMetric"]:
    """The xbench metric class for Quantus's metric class ``name`` (the factory for ``quantus:``)."""
    full = f"{PREFIX}:{name}"
    if name in UNSUPPORTED:
        raise XBenchError(f"metric {full!r} is not bridged: {UNSUPPORTED[name]}")
    classes = quantus_classes()
    valid = sorted(n for n, c in classes.items() if n not in UNSUPPORTED and bridged_modalities(c))
    if name not in valid:
        raise XBenchError(unknown_name("Quantus metric", full, [f"{PREFIX}:{n}" for n in valid]))
    if name == "IROF" and not hasattr(np, "trapz"):
        raise XBenchError(f"metric {full!r} does not run here: Quantus 0.6's IROF calls np.trapz, which "
                          f"numpy {np.__version__} removed")
    qcls = classes[name]
    category = qcls.evaluation_category.value
    direction = DIRECTION.get(name, qcls.score_direction.value)
    rng, ideal = META.get(name, ((-INF, INF), INF if direction == "higher" else -INF))
    signature = inspect.signature(qcls.__init__).parameters
    params = {k: (p.default.__name__ if callable(p.default) else p.default)
              for k, p in signature.items() if k not in HIDDEN and p.default is not inspect.Parameter.empty}
    params.update(BRIDGE_PARAMS)
    family = FAMILY.get(category, "faithfulness")
    needs = {"Localisation": frozenset({"rationale"}), "Complexity": frozenset()}.get(category, frozenset({"model"}))
    summary = " ".join((qcls.__doc__ or "").strip().split("\n\n")[0].split())
    doc = (f"Quantus {name} ({category.lower()}, via the bridge): {summary}\n\n"
           f"Formula: as ``quantus.{name}`` (Quantus 0.6), per example (see "
           f":mod:`xbench.metrics.quantus_bridge`). family {family!r}, direction {direction!r}, range {rng}, "
           f"ideal {ideal} (with Quantus's default settings).")
    ns = {"__doc__": doc, "__module__": __name__, "quantus_class": qcls, "quantus_name": name,
          "family": family, "direction": direction, "range": rng, "ideal": ideal, "needs": needs,
          "modalities": bridged_modalities(qcls), "params": params,
          "formula": f"as quantus.{name} (v0.6), one call per batch, per-example values"}
    cls = type(f"Quantus{name}", (QuantusMetric,), ns)
    # set after the class body: a ``name`` in the body would auto-register every bridged class in
    # Metric.registry.names(); the registry keeps it among its prefix-made classes instead
    cls.name = full
    return cls


def bridged_modalities(qcls: type) -> frozenset[str]:
    return frozenset(MODALITY[d.value] for d in getattr(qcls, "data_applicability", ()) if d.value in MODALITY)


def pixel_map(ex: "DenseExample", scores: np.ndarray) -> np.ndarray:
    """(1, H, W): each pixel gets the score of its feature (``feature_ids`` of the first channel)."""
    fid = ex.feature_ids.reshape(ex.x.shape)[0]
    return np.asarray(scores, dtype=np.float64)[fid][None]


def reduce_scores(out: Any, n: int) -> tuple[np.ndarray, dict[str, Any]]:
    """One float per example from what a Quantus call returned, and notes on how (module doc);
    for per-layer results the notes hold ``layers``: {layer: per-example scores}."""
    from scipy.integrate import trapezoid

    notes: dict[str, Any] = {}
    if isinstance(out, dict):
        layers = {str(k): v for k, v in out.items() if k != "original"}
        if not layers or any(not hasattr(v, "__len__") or len(v) != n for v in layers.values()):
            raise ValueError(f"returned a dict of {len(out)} entries that are not per-example scores")
        table = np.array([np.asarray(v, dtype=np.float64) for v in layers.values()])
        notes["reduction"] = "mean over randomised layers (the 'original' entry left out)"
        notes["layers"] = dict(zip(layers, table))
        return table.mean(0), notes
    if not hasattr(out, "__len__") or len(out) != n:
        raise ValueError(f"returned {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'} "
                         f"for {n} examples, not one score per example")
    values = np.empty(n)
    for i, v in enumerate(out):
        arr = np.asarray(v, dtype=np.float64)
        if arr.ndim == 0:
            values[i] = float(arr)
        else:
            values[i] = float(trapezoid(arr.reshape(-1), dx=1.0))
            notes["reduction"] = "area under each example's curve (trapezoid, unit spacing; Quantus's calculate_auc)"
    return values, notes


class QuantusMetric(Metric):
    """Base of the bridged classes that :func:`quantus_metric` makes; see the module docstring."""

    quantus_class: ClassVar[type]
    quantus_name: ClassVar[str]
    reexplains = True  # Quantus calls the explainer (its explain_func) on the inputs it perturbs
    typed_params = False  # Quantus's own parameters, whose defaults do not fix their types

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        where = f"metric {self.name!r}"
        k = self.p["examples_per_call"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise XBenchError(f"{where}: parameter 'examples_per_call' must be an integer >= 1, got {k!r}")
        if self.p["softmax"] not in (None, True, False):
            raise XBenchError(f"{where}: parameter 'softmax' must be true, false or null, got {self.p['softmax']!r}")
        if self.quantus_name == "RegionPerturbation" and params.get("order", "morf") != "morf":
            raise XBenchError(f"{where}: parameter 'order' must be 'morf' here (xbench ranks it higher-is-better; "
                              f"'lerf' and 'random' curves rank the other way or not at all)")
        #: the constructor arguments the suite gave, callables resolved
        self.given = {n: self._resolve(n, v) for n, v in params.items() if n not in BRIDGE_PARAMS}
        self.make(n_classes=None, ndim=4)  # Quantus checks its arguments: fail at load time, in one line

    def _resolve(self, name: str, value: Any) -> Any:
        sig = inspect.signature(self.quantus_class.__init__).parameters
        if isinstance(value, str) and is_function_param(name, sig[name].default):
            funcs = quantus_functions()
            if value not in funcs:
                close = unknown_name("Quantus function", value, sorted(funcs))
                raise XBenchError(f"metric {self.name!r}: parameter {name!r}: {close}")
            return funcs[value]
        return value

    def make(self, n_classes: int | None, ndim: int) -> Any:
        """A fresh Quantus metric object (they keep state between calls) for this task."""
        kw = dict(self.given)
        sig = inspect.signature(self.quantus_class.__init__).parameters
        if "num_classes" in sig and "num_classes" not in kw and n_classes is not None:
            kw["num_classes"] = n_classes  # RandomLogit: the task's classes, not Quantus's default 1000
        if "normalise_func_kwargs" in sig and "normalise_func_kwargs" not in kw:
            fn = kw.get("normalise_func")
            if fn is None or "normalise_axes" in inspect.signature(fn).parameters:
                kw["normalise_func_kwargs"] = {"normalise_axes": list(range(1, ndim))}  # per example
        kw.update({k: v for k, v in FORCED.items() if k in sig})
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self.quantus_class(**kw)
        except Exception as e:  # Quantus asserts on its arguments
            raise XBenchError(f"metric {self.name!r}: Quantus rejected its parameters ({_one_line(e)})") from None

    def why_not(self, ctx: Context, i: int) -> str | None:
        why = super().why_not(ctx, i)
        a = ctx.expl.attributions[i]
        if why is None and len(a) and np.all(a == a[0]):
            return CONSTANT
        return why

    def score(self, ctx: Context, states: list) -> tuple[np.ndarray, list[str | None]]:
        errors: list[str | None] = [self.why_not(ctx, i) for i in range(ctx.n)]
        values = np.full(ctx.n, np.nan)
        idx = [i for i, e in enumerate(errors) if e is None]
        run = _Run(self, ctx)
        k = self.p["examples_per_call"]
        with run.counting():
            for start in range(0, len(idx), k):
                chunk = idx[start:start + k]
                try:
                    values[chunk] = run.call(chunk)
                except Exception as e:
                    if len(chunk) == 1:
                        errors[chunk[0]] = f"Quantus {self.quantus_name} failed: {_one_line(e)}"
                        continue
                    for i in chunk:  # one bad example should not sink its batch: retry alone
                        try:
                            values[i] = run.call([i])[0]
                        except Exception as e1:
                            errors[i] = f"Quantus {self.quantus_name} failed: {_one_line(e1)}"
        for i in idx:
            if errors[i] is None and not np.isfinite(values[i]):
                errors[i] = f"Quantus {self.quantus_name} returned {values[i]}"
        self.notes.update(run.notes)
        if run.layers:  # mean of each randomised layer's scores over the examples scored
            self.notes["layer_means"] = {k: float(np.nanmean(v)) if np.isfinite(v).any() else None
                                         for k, v in run.layers.items()}
        self.notes["quantus_forward_rows"] = run.direct_rows
        return values, errors


class _Run:
    """One metric on one context: builds batches, runs Quantus, counts, and explains again."""

    def __init__(self, metric: QuantusMetric, ctx: Context) -> None:
        self.metric, self.ctx = metric, ctx
        self.module = ctx.task.model.model
        self.explaining = False
        self.direct_rows = 0
        self.notes: dict[str, Any] = {}
        self.layers: dict[str, list[float]] = {}
        self.examples: list = []
        self.n_calls = 0

    # -- counting ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Count the module's forward rows (:meth:`_hook`) while the block runs."""
        handle = self.module.register_forward_hook(self._hook)
        try:
            yield
        finally:
            handle.remove()

    def _hook(self, module: Any, args: Any, output: Any) -> None:
        if self.explaining or not hasattr(output, "shape"):
            return  # passes of re-explanations are counted by the explainer's adapter
        rows = int(output.shape[0])
        self.direct_rows += rows
        if module is self.module:
            self.ctx.task.model.n_forward += rows
        else:  # Quantus's randomised deep copies carry the hook along
            self.ctx.reexplain_passes[0] += rows

    # -- one Quantus call -------------------------------------------------------------------
    def call(self, chunk: list[int]) -> np.ndarray:
        ctx, m = self.ctx, self.metric
        self.examples = [ctx.task.examples[i] for i in chunk]
        self.n_calls = 0
        x = np.stack([ex.x for ex in self.examples]).astype(np.float32)
        a = np.stack([pixel_map(ex, ctx.expl.attributions[i]) for ex, i in zip(self.examples, chunk)])
        s = None
        if "rationale" in m.needs:
            s = np.stack([pixel_map(ex, ex.rationale) for ex in self.examples])
        y = np.asarray(ctx.targets[chunk], dtype=np.int64)
        qm = m.make(int(ctx.task.model.num_labels), x.ndim)
        kw: dict[str, Any] = {"batch_size": len(chunk)}  # one Quantus batch: explain rows map to examples
        if m.p["softmax"] is not None:
            kw["softmax"] = bool(m.p["softmax"])
        param = next(self.module.parameters(), None)
        seed = derive_seed(ctx.task.name, m.name, "quantus", ctx.seed, *[ex.id for ex in self.examples])
        with isolated_global_rng(seed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = qm(model=self.module, x_batch=x, y_batch=y, a_batch=a, s_batch=s, channel_first=True,
                     explain_func=self.explain, explain_func_kwargs={},
                     device=str(param.device) if param is not None else "cpu", **kw)
        values, notes = reduce_scores(out, len(chunk))
        for layer, v in notes.pop("layers", {}).items():
            self.layers.setdefault(layer, []).extend(v.tolist())
        self.notes.update(notes)
        return values

    def explain(self, model: Any, inputs: Any, targets: Any, **_: Any) -> np.ndarray:
        """Quantus's ``explain_func``: the context's explainer on ``inputs`` (rows = this batch's
        examples, in order) for ``targets``, on ``model``; pixel maps (B, 1, H, W)."""
        import torch

        ctx = self.ctx
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().numpy()
        inputs = np.asarray(inputs, dtype=np.float32)
        targets = np.asarray(targets.detach().cpu() if isinstance(targets, torch.Tensor) else targets).reshape(-1)
        if len(inputs) != len(self.examples) or len(targets) != len(self.examples):
            raise RuntimeError(f"explain_func got {len(inputs)} inputs for a batch of {len(self.examples)}")
        task = ctx.task if model is self.module else replace(ctx.task, model=ctx.task.model.with_model(model))
        rows = [inp.reshape(ex.x.shape) for inp, ex in zip(inputs, self.examples)]
        if all(np.array_equal(r, ex.x) for r, ex in zip(rows, self.examples)):
            examples, parts = self.examples, ()  # the same inputs: the same explainer randomness
        else:
            self.n_calls += 1
            examples = [ex.with_input(r, f"{ex.id}~quantus{self.n_calls}") for r, ex in zip(rows, self.examples)]
            parts = (self.metric.name, "reexplain", self.n_calls)
        self.explaining = True
        try:
            out = ctx.reexplain(examples, targets.astype(np.int64), None, task, *parts)
        finally:
            self.explaining = False
        return np.stack([pixel_map(ex, a) for ex, a in zip(examples, out.attributions)])


def _one_line(e: BaseException) -> str:
    msg = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {msg[:300]}"


Metric.registry.add_prefix(PREFIX, quantus_metric,
                           "any Quantus 0.6 metric by class name, e.g. quantus:PixelFlipping "
                           "(image tasks; parameters as Quantus's constructor; see xbench/metrics/quantus_bridge.py)")
