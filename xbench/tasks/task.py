"""Runtime tasks: a validated spec, loaded into encoded examples, a removal policy, a target and a
model adapter, all through the task's modality (:mod:`xbench.features.protocol`).

A :class:`Task` is what explainers are run on (it builds their :class:`AttributionInputs`) and what
metrics score against; nothing here branches on the modality.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xbench.core.errors import XBenchError
from xbench.data.base import DatasetSource
from xbench.features.engine import PerturbationEngine
from xbench.features.protocol import AttributionInputs, Modality, ModelAdapter, Removal, Target
from xbench.models.base import ModelSource
from xbench.spec.task import TaskSpec

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime

SPACES = ("input", "presence", "model")


@dataclass
class Task:
    spec: TaskSpec
    examples: list[Any]
    model: ModelAdapter
    label_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    modality: Modality | None = None
    removal: Removal | None = None
    target: Target | None = None

    def __post_init__(self) -> None:
        if self.modality is None:
            self.modality = Modality.registry.get(self.spec.modality)(self.spec)
        if self.target is None:
            self.target = self.modality.target()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def module(self) -> Any:
        """The torch model behind the adapter."""
        return self.model.model

    @property
    def runtime(self) -> "Runtime | None":
        return getattr(self.model, "runtime", None)

    @property
    def provides(self) -> frozenset[str]:
        """What the model offers explainers (the adapter's ``provides`` where it narrows the modality's,
        e.g. a text model loaded without eager attention gives no attention weights)."""
        return frozenset(getattr(self.model, "provides", self.modality.provides))

    def counts(self) -> tuple[int, int]:
        """Forward and backward passes of the task's model so far."""
        return self.model.counts()

    def engine(self, batch_size: int | None = None) -> PerturbationEngine:
        """A new perturbation engine over this task's model and removal policy."""
        return PerturbationEngine(self.model, self.removal, batch_size)

    def fingerprint(self) -> str:
        """Hash of the examples' token ids, labels and rationales: the dataset slice's identity."""
        h = hashlib.sha256()
        for ex in self.examples:
            h.update(ex.id.encode())
            h.update(ex.digest())
            h.update(str(ex.label).encode())
            if ex.rationale is not None:
                h.update(ex.rationale.tobytes())
        return h.hexdigest()[:16]

    # -- what explainers see: captum's vocabulary, nothing else of the task ------------------------
    def attribution_inputs(self, ex: Any, target: int, space: str) -> AttributionInputs:
        """The forward function, inputs, baselines, target and extras an explainer in ``space`` takes
        for one example (see :class:`~xbench.features.protocol.AttributionInputs`):

        - ``input``: the adapter's differentiable input (word embeddings, the image, the row) from its
          ``grad_inputs``, baselines the removal policy's "feature removed" input;
        - ``presence``: a vector of ones over the features; ``forward_func`` removes the zeros by the
          task's policy (the same :meth:`Removal.apply` the metrics' engine uses);
        - ``model``: no inputs; the module and its attention weights only (attention methods).
        """
        if space not in SPACES:
            raise ValueError(f"unknown attribution space {space!r}; valid: {', '.join(SPACES)}")
        model, modality = self.model, self.modality
        common: dict[str, Any] = dict(
            target=int(target), example=ex, space=space, module=model.model,
            attentions=(lambda: model.attentions(ex)) if hasattr(model, "attentions") else None,
            groups=lambda **params: modality.groups(ex, **params), query=modality.query_position(ex),
            pool=lambda scores: pool(ex, scores, modality.pooling()))
        if space == "input":
            inputs, baselines, extra = model.grad_inputs(ex, self.removal)
            return AttributionInputs(model.grad_forward(self.target.output == "probability"), inputs, baselines,
                                     additional_forward_args=extra, reduce=model.reduce_grad, **common)
        if space == "presence":
            return AttributionInputs(presence_forward(model, self.removal, ex, self.target.output),
                                     torch.ones(1, ex.n_features, dtype=torch.float64), 0.0, **common)
        return AttributionInputs(None, None, None, **common)

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]:
        """The conventions an explanation of this task depends on (recorded with it)."""
        return {"explained_output": self.target.describe(), "replacement": self.removal.name,
                **self.modality.conventions(space, scores, reduce)}


def presence_forward(model: ModelAdapter, removal: Removal, ex: Any, output: str):
    """f(z) over binary presence vectors ``z`` (N, F): the model's outputs (logits or probabilities) on
    ``ex`` with the features where z = 0 removed by ``removal``. Calls go straight to the model, not
    through the metrics' deduplicating engine, so an explainer's measured cost is its own."""
    def f(z: torch.Tensor) -> torch.Tensor:
        rows, _ = removal.apply(ex, z.detach().cpu().numpy() > 0.5)
        return torch.from_numpy(model.outputs(rows, output))

    return f


def pool(ex: Any, scores: np.ndarray, how: str = "sum") -> np.ndarray:
    """Pool per-position scores into per-feature scores (sum, mean or max over a feature's positions,
    ``ex.feature_ids``; positions with feature id -1 are left out)."""
    m = ex.feature_ids >= 0
    fid, vals = ex.feature_ids[m], np.asarray(scores, dtype=np.float64)[m]
    out = np.zeros(ex.n_features)
    if how == "max":
        out.fill(-np.inf)
        np.maximum.at(out, fid, vals)
        return out
    np.add.at(out, fid, vals)
    if how == "mean":
        out /= np.bincount(fid, minlength=ex.n_features)
    return out


def sources(spec: TaskSpec) -> tuple[DatasetSource, ModelSource]:
    """The task's dataset and model sources, resolving relative paths against its file."""
    source = DatasetSource.registry.get(spec.dataset.source)(**spec.dataset.params)
    msource = ModelSource.registry.get(spec.model.source)(**spec.model.params)
    source.task_path = msource.task_path = spec.path  # data and model folders may be relative to the file
    return source, msource


def _check_sources(spec: TaskSpec, srcs: tuple[DatasetSource, ModelSource]) -> None:
    for s in srcs:
        reason = s.unavailable()
        if reason:
            raise XBenchError(f"{spec.path}: {reason}")


def check_available(specs: list[TaskSpec], live_models: set[str] = frozenset()) -> None:
    """Raise the first task's one-line reason it cannot run here (data missing, network needed). Quick:
    sources answer without waiting on the network. A task named in ``live_models`` has its model
    already (the Python API's), so its model source is not asked."""
    for spec in specs:
        ds, ms = sources(spec)
        _check_sources(spec, (ds,) if spec.name in live_models else (ds, ms))


def load_splits(spec: TaskSpec, source: DatasetSource) -> Any:
    """The dataset source's splits; a source's own check of its parameters' values (a ``ValueError``,
    e.g. min_words > max_words) is one line naming the task file."""
    try:
        return source.load(spec.dataset.seed)
    except ValueError as e:
        raise XBenchError(f"{spec.path}: dataset source {spec.dataset.source!r}: "
                          f"{' '.join(str(e).split())}") from None


def load_task(spec: TaskSpec, n: int | None = None, runtime: "Runtime | None" = None,
              model: tuple[Any, Any, dict] | None = None) -> Task:
    """Build the dataset, get (train or load) the model, and encode the first ``n`` test examples
    through the task's modality; the model goes on ``runtime``'s device (default: the CPU).
    ``model``: ``(model, tokenizer, info)`` already in memory, used instead of the model source."""
    from xbench.core.device import Runtime

    t0 = time.perf_counter()
    source, msource = sources(spec)
    _check_sources(spec, (source,) if model is not None else (source, msource))
    splits = load_splits(spec, source)
    model, tokenizer, minfo = model if model is not None else msource.load(spec, splits)
    cap = [k for k in (n, spec.max_examples) if k is not None]
    records = splits.test[:min(cap)] if cap else splits.test
    modality = Modality.registry.get(spec.modality)(spec)
    removal = modality.removal(splits, tokenizer)
    examples = modality.encode(records, splits, tokenizer, removal)
    adapter = modality.adapter(model, tokenizer, splits, runtime or Runtime())
    examples = modality.bind(examples, adapter)
    empty = [ex.id for ex in examples if ex.n_features == 0]
    if empty:
        raise XBenchError(f"{spec.path}: example {empty[0]} has no features after tokenisation")
    info = {"model": minfo, "n_examples": len(examples), "load_seconds": round(time.perf_counter() - t0, 2)}
    return Task(spec, examples, adapter, splits.label_names, info, modality, removal)


def targets_for(task: Task, engine: "PerturbationEngine") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(targets, predictions, class probabilities (n, C)): the target is the predicted class unless
    the task says ``target: label``."""
    handles = np.array([engine.submit(ex, np.ones(ex.n_features, bool))[0] for ex in task.examples])
    engine.run()
    probs = engine.probs(handles)
    pred = probs.argmax(1)
    return task.target.select(pred, np.array([ex.label for ex in task.examples])), pred, probs


def weights_hash(model: Any) -> str:
    """A short sha256 of a torch module's state dict (names and bytes, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        t = t.detach().cpu().contiguous()
        h.update((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()[:16]
