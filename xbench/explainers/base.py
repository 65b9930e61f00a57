"""Explainers: one registered class each, with its metadata on the class.

Every explainer returns one score per *feature* (see :class:`~xbench.features.protocol.Example`)
for each example, explaining the target class's logit (or probability: the task's
``explained_output``). An explainer sees captum's vocabulary and nothing else of the task: its
``attribute(inputs, seed)`` gets an :class:`~xbench.features.protocol.AttributionInputs`.
Conventions that change numbers are recorded with every result:

- gradient methods attribute the word-embedding input (``inputs_embeds``) and reduce
  captum's per-dimension attribution over the embedding dimension by **sum** (the
  reduction that keeps Integrated Gradients' completeness); ``reduce: l2`` is available;
- token scores pool into word features by the task's ``pooling`` rule (sum by default);
- baselines are the embeddings of the task's replacement token at every non-special
  position (``[PAD]`` for the ``delete`` policy), so a gradient method's reference input
  is the same "feature removed" input the faithfulness metrics use.

Randomness: only methods whose captum implementation draws from the global RNGs (NoiseTunnel,
GradientShap, Lime, KernelShap; ``draws_global_rng``) run inside
:func:`~xbench.core.seeding.isolated_global_rng`; the deterministic ones (Saliency, InputXGradient,
Integrated Gradients, Occlusion) draw nothing, so they skip the fork (a ``torch.manual_seed`` per
call) with the same numbers.

Batching (opt-in): by default every example is one captum call. The deterministic gradient methods
(``batchable``: Saliency, InputXGradient, Integrated Gradients) take ``batch_examples`` (default 1):
up to that many examples whose inputs stack (:func:`batch_key`: same shapes; for text, same length)
are explained in one captum call with per-row targets, in :meth:`Explainer.explain` and so in every
re-explanation a metric asks for (stability noise, sanity checks, the Quantus bridge). Batched
numbers equal the one-at-a-time ones up to float32 rounding, not bit for bit: CPU (and GPU) kernels
take other paths for other batch sizes (measured on the shipped CNN and BERT: differences up to
1e-6 relative, ``tests/explainers/test_batched.py``), which is why it is off by default and, when
set, enters the explainer's parameters (and so configs, hashes and cache keys); left unset it
appears nowhere, so default configs, their hashes and every number are what they were.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from xbench.core.progress import bar
from xbench.core.registry import Registered, Registry
from xbench.core.seeding import derive_seed

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime
    from xbench.features.protocol import AttributionInputs, Explainable

FAMILIES = ("gradient", "perturbation", "attention", "control", "custom", "precomputed")


@dataclass
class Explanations:
    """Attributions for a list of examples, with the measured cost of each."""

    explainer: str
    params: dict[str, Any]
    example_ids: list[str]
    attributions: list[np.ndarray]
    seconds: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    #: peak memory of each example's explanation, MiB (NaN where not measured)
    memory: np.ndarray | None = None
    #: per example, why the explainer failed on it (its attributions are then NaN), or None
    errors: list[str | None] | None = None
    #: tokens the model processed for each example's explanation (rows' lengths summed; 0 for inputs
    #: that are not token sequences)
    tokens: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.memory is None:
            self.memory = np.full(len(self.example_ids), np.nan)
        if self.tokens is None:
            self.tokens = np.zeros(len(self.example_ids), dtype=np.int64)
        if self.errors is None:
            self.errors = [None] * len(self.example_ids)

    def save(self, path: Path) -> None:
        from xbench.core.io import atomic_write

        lengths = np.array([len(a) for a in self.attributions], dtype=np.int64)
        flat = np.concatenate(self.attributions) if self.attributions else np.zeros(0)

        def write(f: Any) -> None:
            np.savez(f, lengths=lengths, flat=flat.astype(np.float64), seconds=self.seconds,
                     forward=self.forward, backward=self.backward, memory=np.asarray(self.memory, np.float64),
                     tokens=np.asarray(self.tokens, np.int64),
                     ids=np.array(self.example_ids, dtype=str), errors=np.array([e or "" for e in self.errors], dtype=str))

        atomic_write(path, write, mode="wb")

    @classmethod
    def load(cls, path: Path, explainer: str, params: dict, meta: dict) -> "Explanations":
        with np.load(path, allow_pickle=False) as z:
            splits = np.cumsum(z["lengths"])[:-1]
            memory = z["memory"] if "memory" in z.files else None  # written before peak memory was measured
            errors = [str(e) or None for e in z["errors"]] if "errors" in z.files else None
            tokens = z["tokens"] if "tokens" in z.files else None  # written before tokens were counted
            return cls(explainer, params, [str(i) for i in z["ids"]], list(np.split(z["flat"], splits)),
                       z["seconds"], z["forward"], z["backward"], {**meta, "cache": "hit"}, memory, errors, tokens)


class Explainer(Registered):
    """Base class. Subclasses set the metadata below and implement :meth:`attribute`.

    ``attribute(inputs, seed)`` receives what captum's ``attribute`` takes for one example
    (:class:`~xbench.features.protocol.AttributionInputs`: forward function, inputs, baselines,
    target, additional forward arguments, feature groups) and returns one score per feature
    (``scores = "features"``), or per input position (``scores = "tokens"``: xbench pools them into
    features), or a captum attribution over ``inputs`` (then call ``inputs.to_features``)."""

    registry: ClassVar[Registry["Explainer"]] = Registry("explainer")
    family: ClassVar[str] = "control"
    #: what the method needs from the model: 'gradients', 'attention'
    needs: ClassVar[frozenset[str]] = frozenset()
    stochastic: ClassVar[bool] = False
    #: 'tokens' if ``attribute`` scores token positions (text) or input elements (images, tabular),
    #: then pooled into features; else 'features'
    scores: ClassVar[str] = "features"
    #: which inputs the method works on: 'input' (the model's differentiable input: word embeddings,
    #: pixels, columns), 'presence' (a binary vector over the features, removed by the task's policy)
    #: or 'model' (no inputs: the module and its attention weights)
    space: ClassVar[str] = "presence"
    #: the task modalities the method applies to (None: every modality that offers what it ``needs``)
    modalities: ClassVar[frozenset[str] | None] = None
    #: parameters that are batch sizes: halved and retried when a call runs out of memory
    batch_params: ClassVar[tuple[str, ...]] = ()
    #: whether the explainer can explain inputs it has not seen (stability and sanity metrics explain
    #: perturbed inputs and randomised models again); False for precomputed attributions
    reexplainable: ClassVar[bool] = True
    #: whether :meth:`attribute_batch` explains several examples in one call (module docstring,
    #: *Batching*); such explainers take the opt-in parameter ``batch_examples``
    batchable: ClassVar[bool] = False
    #: opt-in parameters and their defaults, kept out of ``params`` (and so out of configs, their hashes
    #: and cache keys) unless set to another value than the default: the default behaviour and every
    #: number it gives stay exactly as they were before the option existed
    optional_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        opt = {k: params.pop(k) for k in list(params) if k in self.optional_params}
        super().__init__(**params)
        for k, v in opt.items():
            default = self.optional_params[k]
            if isinstance(default, int) and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                from xbench.core.errors import XBenchError

                raise XBenchError(f"{self.registry.kind} {self.name!r}: parameter {k!r} must be a positive "
                                  f"integer, got {v!r}")
            if v != default:
                self.p[k] = v

    @property
    def batch_examples(self) -> int:
        """Examples per captum call: 1 (one at a time, the default) unless ``batch_examples`` is set."""
        return int(self.p.get("batch_examples", 1)) if self.batchable else 1

    def applies_to(self, task: "Explainable") -> bool:
        return (self.modalities is None or task.spec.modality in self.modalities) and \
            self.needs <= task.provides

    def attribute(self, inputs: "AttributionInputs", seed: int) -> Any:
        raise NotImplementedError

    def attribute_batch(self, inputs: "list[AttributionInputs]", seeds: list[int]) -> list[Any]:
        """What :meth:`attribute` returns for each of several examples, from one batched call (only
        where ``batchable``; :func:`batch_key` says which inputs may share a call)."""
        raise NotImplementedError

    def conventions(self, task: "Explainable") -> dict[str, Any]:
        """The conventions this explainer's numbers depend on on this task (recorded with them)."""
        return task.conventions(self.space, self.scores, self.p.get("reduce", "sum"))

    def explain(self, task: "Explainable", examples: list[Any], targets: list[int], seed: int = 0,
                progress: bool = False, extra_seed: tuple = (), runtime: "Runtime | None" = None,
                extra_seeds: "Sequence[tuple] | None" = None,
                prepared: "Sequence[AttributionInputs] | None" = None, measure_memory: bool = True) -> Explanations:
        """Attributions over features for each example, timing, counting passes and measuring peak
        memory per example (:class:`xbench.core.device.PeakMemory`).

        Example i's randomness is seeded from (task, explainer, example id, seed, *extra_seed), or with
        ``extra_seeds`` (one tuple per example) from (..., seed, *extra_seeds[i]). A call
        that runs out of memory is retried with the ``batch_params`` halved (recorded in the runtime's
        back-offs). Any other error on one example (an exception, a result of the wrong shape) is that
        example's failure: its attributions are NaN, its reason is kept in ``errors``, and the others
        go on; metrics count it in ``n_failed`` with that reason.

        ``prepared``: each example's :class:`~xbench.features.protocol.AttributionInputs` already built
        (e.g. under a temporary change of the model's word embeddings that is over by now), used
        instead of ``task.attribution_inputs``; only for explainers whose result depends on nothing
        else (input-space methods).

        ``measure_memory=False`` skips the peak-memory measure (``memory`` is then NaN): it trims the
        heap and resets the peak before every call, which costs more than a small model's gradient;
        for re-explanations whose cost is not reported per example.

        With ``batch_examples`` > 1 (opt-in, batchable explainers only) up to that many examples whose
        inputs can share a call (:func:`batch_key`) are explained in one captum call; each example of a
        batch is charged an equal share of its time, passes and tokens, and the batch's peak memory.
        A batch that fails otherwise than by running out of memory is explained again one example at a
        time, so each example's failure stays its own."""
        runtime = runtime if runtime is not None else task.runtime
        n = len(examples)
        if extra_seeds is not None and len(extra_seeds) != n:
            raise ValueError(f"explain: {len(extra_seeds)} extra_seeds for {n} examples")
        if prepared is not None and len(prepared) != n:
            raise ValueError(f"explain: {len(prepared)} prepared inputs for {n} examples")
        seeds = [derive_seed(task.name, self.name, "explain", ex.id, seed,
                             *(extra_seed if extra_seeds is None else extra_seeds[i]))
                 for i, ex in enumerate(examples)]
        rec = _Record(n)
        rec.measure = measure_memory
        ticks = bar(range(n), self.name, n, "ex") if progress else None
        it = iter(ticks) if ticks is not None else None
        i = 0
        while i < n:
            if self.batch_examples <= 1:
                self._explain_one(task, examples[i], int(targets[i]), seeds[i], runtime, rec, i, prepared)
                done = 1
            else:
                done = self._explain_chunk(task, examples, targets, seeds, i, runtime, rec, prepared)
            for _ in range(done if it is not None else 0):
                next(it, None)
            i += done
        attrs = [np.full(ex.n_features, np.nan) if a is None else a for ex, a in zip(examples, rec.attrs)]
        return Explanations(self.name, dict(self.p), [ex.id for ex in examples], attrs, rec.secs, rec.fwd,
                            rec.bwd, {"conventions": self.conventions(task), "cache": "miss"}, rec.mem,
                            rec.errors, rec.toks)

    def _explain_one(self, task: "Explainable", ex: Any, target: int, s_seed: int, runtime: "Runtime | None",
                     rec: "_Record", i: int, prepared: "Sequence[AttributionInputs] | None" = None) -> None:
        """Explain one example (the default path, one captum call per example) into ``rec``'s row i."""
        from xbench.core.device import PeakMemory, is_oom
        from xbench.core.registry import one_line

        while True:
            f0, b0 = task.counts()
            t_0 = _tokens(task)
            peak = PeakMemory(runtime) if rec.measure else _NoMemory()
            try:
                with peak:
                    t0 = time.perf_counter()
                    inputs = prepared[i] if prepared is not None else task.attribution_inputs(ex, target, self.space)
                    s = np.asarray(self.attribute(inputs, s_seed), dtype=np.float64)
                    if self.scores == "tokens":
                        s = inputs.pool(s)
                    rec.secs[i] = time.perf_counter() - t0
                break
            except Exception as e:  # noqa: BLE001 - out-of-memory is retried, anything else fails the example
                if is_oom(e) and runtime is not None and self._halve(runtime):
                    continue
                s, rec.errors[i] = None, f"explainer {self.name} failed: {one_line(e)}"
                break
        f1, b1 = task.counts()
        rec.fwd[i], rec.bwd[i], rec.mem[i], rec.toks[i] = f1 - f0, b1 - b0, peak.mib, _tokens(task) - t_0
        rec.attrs[i] = self._checked(ex, s, rec, i)

    def _checked(self, ex: Any, s: "np.ndarray | None", rec: "_Record", i: int) -> "np.ndarray | None":
        if s is not None and s.shape != (ex.n_features,):
            s, rec.errors[i] = None, (f"explainer {self.name} returned shape {tuple(s.shape)}, expected "
                                      f"({ex.n_features},): one score per feature")
        return s

    def _explain_chunk(self, task: "Explainable", examples: list[Any], targets: list[int], seeds: list[int],
                       start: int, runtime: "Runtime | None", rec: "_Record",
                       prepared: "Sequence[AttributionInputs] | None" = None) -> int:
        """Explain up to ``batch_examples`` examples from ``start`` on, grouped by :func:`batch_key`, one
        :meth:`attribute_batch` call per group; returns how many examples were explained (0 when the
        batch ran out of memory and ``batch_examples`` was halved: the caller tries again)."""
        from xbench.core.device import PeakMemory, is_oom

        idx = list(range(start, min(len(examples), start + self.batch_examples)))
        inputs: dict[int, Any] = {}
        build = np.zeros(len(examples))
        groups: dict[Any, list[int]] = {}
        for i in idx:
            t0 = time.perf_counter()
            try:
                inputs[i] = (prepared[i] if prepared is not None else
                             task.attribution_inputs(examples[i], int(targets[i]), self.space))
            except Exception:  # noqa: BLE001 - its own failure, recorded by the one-example path
                groups.setdefault(("alone", i), []).append(i)
                continue
            build[i] = time.perf_counter() - t0
            key = batch_key(inputs[i])
            groups.setdefault(("alone", i) if key is None else key, []).append(i)
        for g in groups.values():
            if len(g) == 1:
                self._explain_one(task, examples[g[0]], int(targets[g[0]]), seeds[g[0]], runtime, rec, g[0], prepared)
                continue
            f0, b0 = task.counts()
            t_0 = _tokens(task)
            peak = PeakMemory(runtime) if rec.measure else _NoMemory()
            try:
                with peak:
                    t0 = time.perf_counter()
                    outs = self.attribute_batch([inputs[i] for i in g], [seeds[i] for i in g])
                    scores = []
                    for i, o in zip(g, outs):
                        s = np.asarray(o, dtype=np.float64)
                        scores.append(inputs[i].pool(s) if self.scores == "tokens" else s)
                    dt = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001
                if is_oom(e) and runtime is not None and self._halve(runtime):
                    return 0
                for i in g:  # one at a time: each example's failure is its own
                    self._explain_one(task, examples[i], int(targets[i]), seeds[i], runtime, rec, i, prepared)
                continue
            f1, b1 = task.counts()
            fwd, bwd, toks = _shares(f1 - f0, len(g)), _shares(b1 - b0, len(g)), _shares(_tokens(task) - t_0, len(g))
            for k, (i, s) in enumerate(zip(g, scores)):
                rec.secs[i] = dt / len(g) + build[i]
                rec.fwd[i], rec.bwd[i], rec.mem[i], rec.toks[i] = fwd[k], bwd[k], peak.mib, toks[k]
                rec.attrs[i] = self._checked(examples[i], s, rec, i)
        return len(idx)

    def code_fingerprint(self) -> str:
        """A hash of the source an explanation's numbers come from: the files of the modules that
        define this class and its bases, and of what it wraps (a function explainer's function). It
        enters the attribution cache key, so editing an explainer without bumping its ``version`` is
        a cache miss, never a stale result."""
        import hashlib
        import inspect
        import sys

        h = hashlib.sha256()
        objs: list[Any] = [c for c in type(self).__mro__ if c is not object]
        objs += [getattr(type(self), "fn", None)]
        seen: set[str] = set()
        for obj in objs:
            mod = sys.modules.get(getattr(obj, "__module__", None) or "")
            try:
                path = inspect.getsourcefile(mod) if mod is not None else None
            except TypeError:  # a built-in module
                path = None
            key = path or f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
            if key in seen:
                continue
            seen.add(key)
            h.update(key.encode())
            if path:
                try:
                    h.update(Path(path).read_bytes())
                except OSError:
                    pass
        return h.hexdigest()[:16]

    def _halve(self, runtime: "Runtime") -> bool:
        """Halve the batch-size parameters after an out-of-memory error; False when none can shrink."""
        sizes = {k: self.p[k] for k in self.batch_params if isinstance(self.p.get(k), int) and self.p[k] > 1}
        if not sizes:
            return False
        runtime.empty_cache()
        for k, v in sizes.items():
            self.p[k] = max(1, v // 2)
            runtime.backoffs.append({"where": f"explainer {self.name}: {k}", "from": v, "to": self.p[k]})
        return True


class _Record:
    """Per-example results of one :meth:`Explainer.explain` call, filled row by row."""

    def __init__(self, n: int) -> None:
        self.attrs: list[np.ndarray | None] = [None] * n
        self.secs = np.zeros(n)
        self.fwd, self.bwd = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        self.toks = np.zeros(n, dtype=np.int64)
        self.mem = np.full(n, np.nan)
        self.errors: list[str | None] = [None] * n
        self.measure = True


class _NoMemory:
    """A :class:`~xbench.core.device.PeakMemory` that measures nothing (``mib`` NaN)."""

    mib = float("nan")

    def __enter__(self) -> "_NoMemory":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _tokens(task: Any) -> int:
    return int(getattr(getattr(task, "model", None), "n_tokens", 0))


def _shares(total: int, k: int) -> list[int]:
    """``total`` split into ``k`` integer shares as equal as possible (the first ones get the rest)."""
    q, r = divmod(int(total), k)
    return [q + (j < r) for j in range(k)]


def _signature(x: Any) -> Any:
    """Shape, dtype and device of a tensor (or of each tensor of a tuple); None where ``x`` is something
    that cannot be stacked along a batch dimension."""
    import torch

    if x is None or isinstance(x, (int, float)):
        return ("const", x)
    if isinstance(x, torch.Tensor):
        return ("tensor", tuple(x.shape), x.dtype, x.device) if x.dim() >= 1 and x.shape[0] == 1 else None
    if isinstance(x, tuple):
        parts = tuple(_signature(v) for v in x)
        return None if any(p is None for p in parts) else ("tuple", parts)
    return None


def batch_key(inputs: "AttributionInputs") -> Any:
    """What examples must share to be explained in one batched call: the shapes (dtypes, devices) of
    their inputs, baselines and additional forward arguments, all batches of one (tensors, or tuples
    of them; scalar baselines and ``None`` arguments must be equal). Only input-space inputs batch,
    whose forward function is the adapter's, the same for every example (a presence-space one is
    bound to its example). None where the inputs cannot be stacked (another space, a non-tensor
    forward argument such as a causal LM's readout): the example is then explained alone."""
    if inputs.space != "input":
        return None
    parts = (_signature(inputs.inputs), _signature(inputs.baselines), _signature(tuple(inputs.additional_forward_args or ())))
    if any(p is None for p in parts) or parts[0][0] == "const":
        return None
    return (inputs.space, *parts)


def stack_inputs(inputs: "list[AttributionInputs]") -> tuple[Any, Any, Any, list[int]]:
    """(inputs, baselines, additional forward args, targets) of several examples with one
    :func:`batch_key`, concatenated along the batch dimension (the inputs detached and requiring grad
    again, as one leaf); the forward function is the first example's (the same for all of one task)."""
    import torch

    def cat(xs: list[Any], grad: bool = False) -> Any:
        x0 = xs[0]
        if isinstance(x0, tuple):
            return tuple(cat([x[k] for x in xs], grad) for k in range(len(x0)))
        if not isinstance(x0, torch.Tensor):
            return x0
        out = torch.cat([x.detach() for x in xs])
        return out.requires_grad_() if grad else out

    extra = cat([tuple(x.additional_forward_args or ()) for x in inputs])
    return (cat([x.inputs for x in inputs], True), cat([x.baselines for x in inputs]), extra,
            [int(x.target) for x in inputs])


def unstack(attr: Any, k: int) -> Any:
    """Example k's batch of one from a batched attribution (a tensor or a tuple of them)."""
    if isinstance(attr, tuple):
        return tuple(a[k:k + 1] for a in attr)
    return attr[k:k + 1]
