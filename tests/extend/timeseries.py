"""A toy modality, as a contributor would add one: multichannel time series ``(C, T)`` whose features
are time steps (a step's channels share a feature), removed by holding the last kept value (``hold``)
or by zero. One module; nothing in the engine, runner or metrics knows about it."""
from __future__ import annotations

from typing import Any

import numpy as np

from xbench.features.dense import DenseClassifier, DenseExample
from xbench.features.protocol import Modality


class HoldRemoval:
    """A removed step takes the value of the last kept step before it (0 before the first kept one), or
    0 with ``zero``. Rows are materialised here: the one place a keep-mask becomes inputs."""

    def __init__(self, policy: str) -> None:
        self.name = policy

    def apply(self, ex: DenseExample, keep: np.ndarray) -> tuple[list, list[bytes]]:
        keep = np.asarray(keep, dtype=bool).reshape(-1, ex.n_features)
        return [(ex, k) for k in keep], [ex.id.encode() + b"|" + np.packbits(k).tobytes() for k in keep]

    def describe(self) -> dict[str, Any]:
        return {"replacement": self.name, "baseline": "last kept step" if self.name == "hold" else "0"}


class SeriesExample(DenseExample):
    """A dense example whose removed steps are filled by the hold policy."""

    policy = "hold"

    def materialize(self, keep: np.ndarray) -> np.ndarray:
        keep = np.asarray(keep, dtype=bool).reshape(-1, self.n_features)
        out = np.where(keep[:, None, :], self.x[None], 0.0).astype(np.float32)
        if self.policy == "hold":
            for r in range(len(keep)):
                last = np.zeros(self.x.shape[0], dtype=np.float32)
                for t in range(self.n_features):
                    if keep[r, t]:
                        last = self.x[:, t]
                    else:
                        out[r, :, t] = last
        return out

    def with_input(self, x: np.ndarray, new_id: str) -> "SeriesExample":
        ex = SeriesExample(new_id, np.asarray(x, dtype=np.float32), self.feature_ids, self.label, self.features,
                           self.rationale, self.baseline, self.truth, dict(self.meta))
        ex.policy = self.policy
        return ex


class TimeSeriesModality(Modality):
    """Multichannel time series (C, T): one feature per time step."""

    name = "timeseries"
    replacements = ("hold", "zero")
    provides = frozenset({"gradients"})
    noise = "input"

    def removal(self, splits: Any, tokenizer: Any) -> HoldRemoval:
        return HoldRemoval(self.spec.replacement)

    def encode(self, records: list, splits: Any, tokenizer: Any, removal: HoldRemoval) -> list[SeriesExample]:
        out = []
        for r in records:
            x = np.asarray(r.x, dtype=np.float32)
            c, t = x.shape
            fid = np.broadcast_to(np.arange(t), (c, t)).reshape(-1).copy()
            ex = SeriesExample(r.id, x, fid, int(r.label), [f"t{j}" for j in range(t)],
                               None if r.mask is None else np.asarray(r.mask, dtype=np.int8),
                               np.zeros_like(x), None, {})
            ex.policy = removal.name
            out.append(ex)
        return out

    def adapter(self, model: Any, tokenizer: Any, splits: Any, runtime: Any) -> DenseClassifier:
        return DenseClassifier(model, len(splits.label_names), runtime=runtime)
