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
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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

    def applies_to(self, task: "Explainable") -> bool:
        return (self.modalities is None or task.spec.modality in self.modalities) and \
            self.needs <= task.provides

    def attribute(self, inputs: "AttributionInputs", seed: int) -> Any:
        raise NotImplementedError

    def conventions(self, task: "Explainable") -> dict[str, Any]:
        """The conventions this explainer's numbers depend on on this task (recorded with them)."""
        return task.conventions(self.space, self.scores, self.p.get("reduce", "sum"))

    def explain(self, task: "Explainable", examples: list[Any], targets: list[int], seed: int = 0,
                progress: bool = False, extra_seed: tuple = (), runtime: "Runtime | None" = None) -> Explanations:
        """Attributions over features for each example, timing, counting passes and measuring peak
        memory per example (:class:`xbench.core.device.PeakMemory`).

        Example i's randomness is seeded from (task, explainer, example id, seed, *extra_seed). A call
        that runs out of memory is retried with the ``batch_params`` halved (recorded in the runtime's
        back-offs). Any other error on one example (an exception, a result of the wrong shape) is that
        example's failure: its attributions are NaN, its reason is kept in ``errors``, and the others
        go on; metrics count it in ``n_failed`` with that reason."""
        from xbench.core.device import PeakMemory, is_oom
        from xbench.core.registry import one_line

        runtime = runtime if runtime is not None else task.runtime
        n = len(examples)
        attrs, secs = [], np.zeros(n)
        fwd, bwd, toks = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        tokens_of = lambda: int(getattr(getattr(task, "model", None), "n_tokens", 0))  # noqa: E731
        mem = np.full(n, np.nan)
        errors: list[str | None] = [None] * n
        it = bar(examples, self.name, n, "ex") if progress else examples
        for i, ex in enumerate(it):
            s_seed = derive_seed(task.name, self.name, "explain", ex.id, seed, *extra_seed)
            while True:
                f0, b0 = task.counts()
                t_0 = tokens_of()
                peak = PeakMemory(runtime)
                try:
                    with peak:
                        t0 = time.perf_counter()
                        inputs = task.attribution_inputs(ex, int(targets[i]), self.space)
                        s = np.asarray(self.attribute(inputs, s_seed), dtype=np.float64)
                        if self.scores == "tokens":
                            s = inputs.pool(s)
                        secs[i] = time.perf_counter() - t0
                    break
                except Exception as e:  # noqa: BLE001 - out-of-memory is retried, anything else fails the example
                    if is_oom(e) and runtime is not None and self._halve(runtime):
                        continue
                    s, errors[i] = None, f"explainer {self.name} failed: {one_line(e)}"
                    break
            f1, b1 = task.counts()
            fwd[i], bwd[i], mem[i], toks[i] = f1 - f0, b1 - b0, peak.mib, tokens_of() - t_0
            if s is not None and s.shape != (ex.n_features,):
                s, errors[i] = None, (f"explainer {self.name} returned shape {tuple(s.shape)}, expected "
                                      f"({ex.n_features},): one score per feature")
            attrs.append(np.full(ex.n_features, np.nan) if s is None else s)
        return Explanations(self.name, dict(self.p), [ex.id for ex in examples], attrs, secs, fwd, bwd,
                            {"conventions": self.conventions(task), "cache": "miss"}, mem, errors, toks)

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
