"""Dense examples, shared by the image and tabular modalities: inputs are float arrays whose features
are pixels or columns.

A :class:`DenseExample` holds the model input ``x`` (an image ``(C, H, W)`` or a row ``(F,)``), a
feature map ``feature_ids`` (one feature id per element of ``x``, flattened in C order: for images a
pixel's channels share one feature), and the ``baseline`` a removed feature takes, fixed per example
by the task's replacement policy (see :mod:`xbench.features.image`, :mod:`xbench.features.tabular`).

Removing features is ``where(keep[feature_ids], x, baseline)`` (:meth:`DenseExample.materialize`),
computed when the adapter evaluates a batch; the engine's dedup key is (example id, packed keep-mask).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from xbench.features.protocol import PassCounter

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime


@dataclass
class DenseExample:
    id: str
    x: np.ndarray
    feature_ids: np.ndarray
    label: int
    features: list[str]
    rationale: np.ndarray | None = None
    baseline: np.ndarray | None = None
    truth: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    token_type_ids: None = None
    truncated: bool = False

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape)

    @cached_property
    def movable(self) -> tuple[np.ndarray, np.ndarray]:
        cols = np.arange(self.x.size)
        return cols, self.feature_ids

    def materialize(self, keep: np.ndarray) -> np.ndarray:
        """Inputs (m, *x.shape) for the keep-masks ``keep`` (m, F)."""
        keep = np.asarray(keep, dtype=bool).reshape(-1, self.n_features)
        elem = keep[:, self.feature_ids].reshape(len(keep), *self.x.shape)
        return np.where(elem, self.x[None], self.baseline[None]).astype(np.float32)

    def digest(self) -> bytes:
        return self.x.tobytes() + self.feature_ids.tobytes() + self.baseline.tobytes()

    def with_input(self, x: np.ndarray, new_id: str) -> "DenseExample":
        """The same example with another input (e.g. noised for a stability metric); baseline kept."""
        return DenseExample(new_id, np.asarray(x, dtype=np.float32), self.feature_ids, self.label, self.features,
                            self.rationale, self.baseline, self.truth, dict(self.meta))


class DenseRemoval:
    """A dense task's removal policy: a removed feature takes the example's baseline value. Rows are
    ``(example, keep)``, materialised by the adapter batch by batch (a whole image per row would be
    too much to hold for every unique input of a run)."""

    def __init__(self, policy: str, baseline: Any, description: str) -> None:
        self.name = policy
        #: baseline(x, example id) -> the example's baseline array, fixed at encoding
        self.baseline = baseline
        self.description = description

    def apply(self, ex: DenseExample, keep: np.ndarray) -> tuple[list, list[bytes]]:
        keep = np.asarray(keep, dtype=bool).reshape(-1, ex.n_features)
        head = ex.id.encode() + b"|"
        return [(ex, k) for k in keep], [head + np.packbits(k).tobytes() for k in keep]

    def describe(self) -> dict[str, Any]:
        return {"replacement": self.name, "baseline": self.description}


class DenseClassifier(PassCounter):
    """Wraps a ``torch.nn.Module`` mapping float inputs (images ``(N, C, H, W)`` or rows ``(N, F)``)
    to logits, counting passes (:class:`~xbench.features.protocol.PassCounter`). Gradient explainers
    differentiate the input itself; their per-element scores are pooled into features (pixels: over
    channels) by sum."""

    replacement_ids: dict = {}

    def __init__(self, model: torch.nn.Module, num_labels: int, batch_size: int = 512,
                 runtime: "Runtime | None" = None) -> None:
        from xbench.core.device import Runtime

        self.runtime = runtime or Runtime()
        self.model = self.runtime.place(model).eval()
        self.num_labels = int(num_labels)
        self.batch_size = self.runtime.batch_size or batch_size
        self.n_forward = 0
        self.n_backward = 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.runtime.torch_device

    def with_model(self, model: torch.nn.Module) -> "DenseClassifier":
        return DenseClassifier(model, self.num_labels, self.batch_size, self.runtime)

    def logits(self, x: torch.Tensor, n_real: int | None = None) -> torch.Tensor:
        """The model's logits; the first ``n_real`` rows (default all) are counted (:meth:`counted`)."""
        return self.counted(self.model(x.to(device=self.device, dtype=self.runtime.torch_dtype or x.dtype)), n_real)

    def outputs(self, rows: Sequence[tuple[Any, np.ndarray]], kind: str = "logit", min_rows: int = 0) -> np.ndarray:
        """Logits or probabilities for ``(example, keep)`` rows (:meth:`DenseRemoval.apply`); a batch of
        fewer than ``min_rows`` rows is filled up with copies of its first row (outputs dropped, not
        counted, :meth:`~xbench.features.protocol.PassCounter.fill`)."""
        rows, n = self.fill(rows, min_rows)
        # build each example's inputs in one vectorised call (rows of one example are adjacent when
        # the engine or a captum batch submits them), not one row at a time
        parts, start = [], 0
        for end in range(1, len(rows) + 1):
            if end == len(rows) or rows[end][0] is not rows[start][0]:
                parts.append(rows[start][0].materialize(np.stack([k for _, k in rows[start:end]])))
                start = end
        return self.forward_array(np.concatenate(parts), kind, n)

    def forward_array(self, x: np.ndarray, kind: str = "logit", n_real: int | None = None) -> np.ndarray:
        """Outputs for the inputs ``x`` (batches of ``batch_size``); only the first ``n_real`` rows are
        real (the rest fill a small batch up, see :meth:`outputs`): their outputs are returned and
        counted, the fillers' dropped."""
        n_real = len(x) if n_real is None else n_real
        out = []
        with torch.no_grad():
            for b in range(0, len(x), self.batch_size):
                lg = self.logits(torch.from_numpy(np.ascontiguousarray(x[b:b + self.batch_size])), max(0, n_real - b))
                lg = lg[:max(0, n_real - b)].float()
                out.append((torch.softmax(lg, -1) if kind == "probability" else lg).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.num_labels), np.float32)

    def probs(self, rows: Sequence[tuple[Any, np.ndarray]]) -> np.ndarray:
        return self.outputs(rows, "probability")

    def grad_inputs(self, ex: Any, removal: Any = None) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        dev = self.device
        x = torch.from_numpy(ex.x)[None].clone().to(dev).requires_grad_()
        return x, torch.from_numpy(ex.baseline)[None].clone().to(dev), ()

    def grad_forward(self, probability: bool):
        def f(x: torch.Tensor) -> torch.Tensor:
            logits = self.logits(x)
            return torch.softmax(logits, -1) if probability else logits

        return f

    @staticmethod
    def reduce_grad(attr: torch.Tensor, how: str = "sum") -> np.ndarray:
        """Per-element scores, flattened in C order (pooled into features by the explainer)."""
        a = attr.detach()[0].double().reshape(-1)
        return (a.abs() if how == "l2" else a).cpu().numpy()
