"""The modality protocol: what every kind of input (text, images, tabular rows, ...) implements.

xbench's engine, runner, explainers and metrics speak only this protocol. A modality is one module
with a :class:`Modality` subclass (registered by its ``name``, the task file's ``modality``) that
turns records into :class:`Example` objects, builds the task's :class:`Removal` policy and wraps the
model in a :class:`ModelAdapter`. What is being explained is a :class:`Target`. Nothing outside the
modality's module branches on which modality it is.

::

    records --Modality.encode--> examples          (features, gold, model input)
    spec.replacement --Modality.removal--> Removal (one object per task, recorded with results)
    model --Modality.adapter--> ModelAdapter       (batched outputs, gradient inputs, device, counters)
    keep-mask (m, F) --Removal.apply--> rows --ModelAdapter.outputs--> (m, C) logits
    (example, target) --attribution_inputs--> AttributionInputs (what captum's ``attribute`` takes)

A *feature* is the unit an explanation scores and a metric removes: a token or word, a pixel, a
column. A *keep-mask* is a boolean vector over an example's features (True = present).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Protocol, Sequence, runtime_checkable

import numpy as np

from xbench.core.registry import Registered, Registry

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from xbench.core.device import Runtime
    from xbench.data.base import Splits
    from xbench.spec.task import TaskSpec


@runtime_checkable
class Example(Protocol):
    """One encoded input: its features, its gold annotations, and what the model reads.

    ``feature_ids[j]`` is the feature that input position (token, pixel element, column) ``j`` belongs
    to, or -1 for a position that is never removed (special tokens). ``rationale`` is a 0/1 vector over
    the features, ``truth`` a known true attribution over them (or None)."""

    id: str
    label: int
    features: list[str]
    feature_ids: np.ndarray
    rationale: np.ndarray | None
    truncated: bool
    meta: dict

    @property
    def n_features(self) -> int: ...

    def digest(self) -> bytes:
        """Bytes that identify the example's input (for task fingerprints)."""
        ...


@runtime_checkable
class Removal(Protocol):
    """How a removed feature is replaced: one object per task, built by the modality from the task's
    ``replacement`` (the only place that reads it) and recorded with every result.

    ``apply`` is the single place where a keep-mask becomes model input rows, for the metrics'
    engine and for perturbation explainers alike. Rows may be lazy (e.g. ``(example, keep)`` for
    images, materialised by the adapter batch by batch); ``keys`` identify equal inputs for the
    engine's de-duplication."""

    name: str

    def apply(self, ex: Any, keep: np.ndarray) -> tuple[list[Any], list[bytes]]:
        """(rows, dedup keys) for each row of the (m, F) boolean keep-mask."""
        ...

    def describe(self) -> dict[str, Any]:
        """What the policy is, for manifests (e.g. ``{"replacement": "mask", "token_id": 4}``)."""
        ...


@runtime_checkable
class ModelAdapter(Protocol):
    """A model behind one interface: batched outputs on :class:`Removal` rows, the inputs gradient
    methods differentiate, the device it runs on, and counters of forward and backward passes (rows
    passed through the model, rows whose gradient was taken)."""

    num_labels: int
    n_forward: int
    n_backward: int
    batch_size: int
    model: Any

    def counts(self) -> tuple[int, int]: ...

    def outputs(self, rows: Sequence[Any], kind: str = "logit", min_rows: int = 0) -> np.ndarray:
        """(len(rows), num_labels) logits or probabilities, one batch, no gradient."""
        ...

    def grad_inputs(self, ex: Any, removal: Removal) -> tuple["torch.Tensor", "torch.Tensor", tuple]:
        """(inputs requiring grad, baselines, additional forward args) of one example, batch of one."""
        ...

    def grad_forward(self, probability: bool) -> Callable[..., "torch.Tensor"]:
        """f(inputs, *additional) -> (N, num_labels) logits (or probabilities), counted."""
        ...

    def reduce_grad(self, attr: "torch.Tensor", how: str = "sum") -> np.ndarray:
        """Per-position scores from an attribution over :meth:`grad_inputs`' inputs."""
        ...

    def with_model(self, model: Any) -> "ModelAdapter":
        """A new adapter (own counters) around another model of the same kind."""
        ...


class PassCounter:
    """Counts forward and backward passes for an adapter: ``n_forward`` grows by the rows of every
    output passed through :meth:`counted`, ``n_backward`` by those rows when a gradient flows back
    through it (a hook on the output fires once per backward pass)."""

    n_forward: int = 0
    n_backward: int = 0
    #: tokens in the counted rows (attention-mask ones), for token-sequence inputs
    n_tokens: int = 0

    def counts(self) -> tuple[int, int]:
        return self.n_forward, self.n_backward

    @staticmethod
    def fill(rows: Sequence[Any], min_rows: int) -> tuple[list[Any], int]:
        """(``rows`` filled up to ``min_rows`` with copies of the first, how many are real). CPU kernels
        take another path for small batches, so a row's output would otherwise depend on how many rows
        it was evaluated with (see :attr:`xbench.features.engine.PerturbationEngine.MIN_ROWS`); the
        fillers' outputs are dropped and not counted."""
        return list(rows) + [rows[0]] * max(0, min_rows - len(rows)), len(rows)

    def counted(self, out: "torch.Tensor", n_real: int | None = None,
                attention: "torch.Tensor | None" = None) -> "torch.Tensor":
        """``out`` with its first ``n_real`` rows (default all) counted as forward passes, and as
        backward passes when a gradient flows through them; with ``attention`` (the rows' attention
        mask), their tokens too."""
        rows = int(out.shape[0]) if n_real is None else min(int(out.shape[0]), n_real)
        self.n_forward += rows
        if attention is not None:
            self.n_tokens += int(attention[:rows].sum())
        if out.requires_grad:
            def on_backward(grad: "torch.Tensor") -> None:
                self.n_backward += rows

            out.register_hook(on_backward)
        return out


@dataclass(frozen=True)
class Target:
    """What is explained for a task: the logit or the softmax probability of one class per example
    (``explained_output``), and which class: the model's prediction or the gold label (``choose``).

    Explainers attribute the adapter's forward function (softmax applied for ``probability``) with
    captum's ``target`` set to the example's class; metrics read the class's probability with
    :meth:`probability`. Generative
    tasks add other kinds (a token's log-probability, a continuation's, a difference against a foil)
    as new classes with the same methods."""

    output: str = "logit"
    choose: str = "predicted"
    kind: ClassVar[str] = "class"

    def select(self, predicted: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per-example targets: the predicted class, or the gold label with ``choose: label``."""
        return labels if self.choose == "label" else predicted

    @staticmethod
    def probability(probs: np.ndarray, target: int) -> np.ndarray:
        """The target class's probability in each row of (m, C) softmax outputs."""
        return probs[:, target]

    def describe(self) -> str:
        return f"{self.output} of the target class"


@dataclass
class AttributionInputs:
    """What captum's ``attribute`` takes, for one example and one target, built from the task's adapter
    and removal policy; an explainer sees this and nothing else of the task.

    - ``forward_func(inputs, *additional_forward_args)`` -> (N, C) outputs (logit or probability);
    - ``inputs``: a batch of one: for ``space="input"`` the model's differentiable input (word
      embeddings, the image, the row), requiring grad; for ``space="presence"`` a vector of ones over
      the features (1 = present), whose zeros ``forward_func`` removes by the task's policy;
    - ``baselines``: the "feature removed" reference (the replacement token's embeddings, the image or
      row baseline; 0.0 in presence space);
    - ``target``: the class index captum selects;
    - ``example``: the example itself (its ``id``, ``features``, ``n_features``), for explainers that
      need metadata (e.g. precomputed attributions looked up by id);
    - ``module``: the torch model (for layer methods such as Grad-CAM);
    - ``attentions``: a function returning per-layer attention weights, where the model has them;
    - ``groups``: ``groups(**params)`` -> a feature-group map (captum's ``feature_mask``) where the
      modality groups features (image patches, superpixels), else None;
    - ``query``: the position whose attention row attention methods read.

    :meth:`to_features` turns an attribution over ``inputs`` into one score per feature.
    """

    forward_func: Callable[..., Any]
    inputs: Any
    baselines: Any
    target: int | None
    additional_forward_args: tuple = ()
    example: Any = None
    space: str = "input"
    module: Any = None
    attentions: Callable[[], Sequence[Any]] | None = None
    groups: Callable[..., np.ndarray | None] = field(default=lambda **_: None)
    reduce: Callable[..., np.ndarray] | None = None
    pool: Callable[[np.ndarray], np.ndarray] | None = None
    #: the position whose attention row explains the output (``[CLS]``: 0; a causal LM: the last prompt token)
    query: int = 0

    @property
    def captum_kwargs(self) -> dict[str, Any]:
        """``target`` and ``additional_forward_args`` as keywords of a captum ``attribute`` call."""
        return {"target": self.target, "additional_forward_args": self.additional_forward_args or None}

    def to_features(self, attr: Any, how: str = "sum") -> np.ndarray:
        """One score per feature: an input-space attribution reduced per position (over the embedding
        dimension by ``how``, sum or l2) and pooled into features; a presence-space one as it is."""
        if self.space == "presence":
            return attr[0].double().cpu().numpy()
        return self.pool(self.reduce(attr, how))


@runtime_checkable
class Explainable(Protocol):
    """What an explainer is run on (a :class:`xbench.tasks.task.Task` is one): a name for seeds,
    pass counters, and the :class:`AttributionInputs` of each (example, target)."""

    spec: "TaskSpec"
    modality: "Modality"

    @property
    def name(self) -> str: ...

    @property
    def module(self) -> Any:
        """The torch model (for methods that name one of its layers)."""
        ...

    @property
    def runtime(self) -> "Runtime | None":
        """Device, threads and out-of-memory back-off state of the model."""
        ...

    @property
    def provides(self) -> frozenset[str]:
        """What the model offers explainers beyond forward passes ('gradients', 'attention')."""
        ...

    def counts(self) -> tuple[int, int]: ...

    def attribution_inputs(self, ex: Any, target: int, space: str) -> "AttributionInputs": ...

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]: ...


class Modality(Registered):
    """Base class of the modalities. A subclass sets ``name`` (registered), its removal policies
    (``replacements``, the first is the default) and implements the methods below."""

    registry: ClassVar[Registry["Modality"]] = Registry("modality")
    #: the task file's ``replacement`` values this modality knows; the first is the default
    replacements: ClassVar[tuple[str, ...]] = ()
    #: how input-noise stability perturbs an example: 'embeddings' (word-embedding rows), 'input' (the
    #: input array itself), or None (no continuous noise: those metrics do not apply)
    noise: ClassVar[str | None] = None
    #: whether examples are token-id sequences (``input_ids``, ``feature_ids``, ``token_type_ids``) that
    #: label-preserving edits can reorder or shorten (discrete stability)
    token_edits: ClassVar[bool] = False
    #: whether :meth:`groups` groups features (image patches), for methods that perturb groups
    grouped: ClassVar[bool] = False
    #: what the adapter offers explainers beyond forward passes: 'gradients' (``grad_inputs``),
    #: 'attention' (``attentions``); an explainer applies where its ``needs`` are offered
    provides: ClassVar[frozenset[str]] = frozenset()
    #: whether the model generates (a causal LM): the task file may set the generative fields
    #: (``lm_target``, ``chat_template``, ``system_prompt``, ``max_new_tokens``)
    generative: ClassVar[bool] = False
    #: task fields only this modality takes (beyond the generative ones), e.g. ``patch``
    fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: "TaskSpec") -> None:
        self.spec = spec

    def removal(self, splits: "Splits", tokenizer: Any) -> Removal:
        """The task's removal policy (reads ``spec.replacement``)."""
        raise NotImplementedError

    def encode(self, records: list, splits: "Splits", tokenizer: Any, removal: Removal) -> list[Example]:
        """Examples from the dataset's records."""
        raise NotImplementedError

    def adapter(self, model: Any, tokenizer: Any, splits: "Splits", runtime: "Runtime") -> ModelAdapter:
        """The model behind the adapter interface, on the runtime's device."""
        raise NotImplementedError

    def pooling(self) -> str:
        """How per-position scores pool into a feature's score (sum, mean or max)."""
        return "sum"

    def target(self) -> Target:
        """What the task's explainers and metrics explain (recorded with every result)."""
        return Target(self.spec.explained_output, self.spec.target)

    def bind(self, examples: list[Example], adapter: ModelAdapter) -> list[Example]:
        """The examples once the model is there (e.g. a generative task fixes each prompt's answer to the
        model's greedy one); by default unchanged."""
        return examples

    def query_position(self, ex: Any) -> int:
        """The input position whose attention row explains the output: 0 ([CLS]) by default, the last
        prompt position for a causal language model."""
        return 0

    def groups(self, ex: Any, **params: Any) -> np.ndarray | None:
        """A feature -> group map for methods that perturb groups (captum's ``feature_mask``), or None."""
        return None

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]:
        """The conventions an explanation's numbers depend on, recorded with it: for an explainer
        working in ``space`` whose ``scores`` are per feature or per position (``tokens``), reducing an
        input-space attribution per position by ``reduce``."""
        return {}

    def view(self, ex: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(task-level, example-level) fields the report's example viewer shows besides the features."""
        return {}, {}

    def view_model(self, examples: list[Any], adapter: "ModelAdapter", removal: Removal,
                   targets: np.ndarray) -> list[dict[str, Any]]:
        """Per-example fields of the viewer that need the model (e.g. a multimodal example's modality
        share); by default none."""
        return [{} for _ in examples]
