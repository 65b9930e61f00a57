"""Dense examples: images and tabular rows, whose features are pixels or columns.

A :class:`DenseExample` holds the model input ``x`` (an image ``(C, H, W)`` or a row
``(F,)``), a feature map ``feature_ids`` (one feature id per element of ``x``,
flattened in C order: for images a pixel's channels share one feature), and the
``baseline`` a removed feature takes, fixed per example by the task's replacement
policy:

- images: ``zero`` (0 everywhere), ``mean`` (each channel's mean over the image,
  Quantus' ``perturb_baseline="mean"``), ``blur`` (the image under a Gaussian blur of
  sigma = max(H, W) / 8 pixels, Fong & Vedaldi 2017);
- tabular: ``mean`` (the training mean of each column), ``marginal`` (for each
  example, one draw per column from the training column's values, seeded per
  (task, example): a sample from the product of the training marginals).

Removing features is ``where(keep[feature_ids], x, baseline)``, computed when the
engine evaluates a batch; the engine's dedup key is (example id, packed keep-mask).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import XBenchError
from .seeding import np_rng

if TYPE_CHECKING:  # pragma: no cover
    from .data import Splits
    from .spec import TaskSpec


@dataclass
class ArrayRecord:
    """One labelled array: an image ``(C, H, W)`` or a tabular row ``(F,)``.

    ``mask`` is the gold rationale: 0/1 over pixels ``(H, W)`` or over columns ``(F,)``.
    ``truth`` is a known true attribution over features (e.g. a linear generator's
    w * (x - baseline)), or None. When ``Splits.info['truth_weights']`` holds a linear
    generator's coefficients w, :func:`encode_arrays` sets each tabular example's truth to
    w * (x - baseline) with the example's own baseline (which the replacement policy fixes).
    """

    id: str
    x: np.ndarray
    label: int
    mask: np.ndarray | None = None
    truth: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


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

    def perturb(self, keep: np.ndarray, policy: str, replacement_id: Any = None) -> tuple[list, list[bytes]]:
        """Rows ``(example, keep)``, materialised at evaluation time, and their dedup keys."""
        keep = np.asarray(keep, dtype=bool).reshape(-1, self.n_features)
        head = self.id.encode() + b"|"
        return [(self, k) for k in keep], [head + np.packbits(k).tobytes() for k in keep]

    def digest(self) -> bytes:
        return self.x.tobytes() + self.feature_ids.tobytes() + self.baseline.tobytes()

    def with_input(self, x: np.ndarray, new_id: str) -> "DenseExample":
        """The same example with another input (e.g. noised for a stability metric); baseline kept."""
        return DenseExample(new_id, np.asarray(x, dtype=np.float32), self.feature_ids, self.label, self.features,
                            self.rationale, self.baseline, self.truth, dict(self.meta))


def blur_sigma(shape: tuple[int, ...]) -> float:
    return max(shape[-2:]) / 8.0


def image_baseline(x: np.ndarray, policy: str) -> np.ndarray:
    if policy == "zero":
        return np.zeros_like(x)
    if policy == "mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).astype(np.float32).copy()
    if policy == "blur":
        from scipy.ndimage import gaussian_filter

        s = blur_sigma(x.shape)
        return gaussian_filter(x, sigma=(0, s, s), mode="nearest").astype(np.float32)
    raise XBenchError(f"unknown image replacement {policy!r}; valid: zero, mean, blur")


def encode_arrays(records: list, splits: "Splits", spec: "TaskSpec") -> list[DenseExample]:
    """Turn array records into examples with feature maps and per-example baselines."""
    out = []
    if spec.modality == "tabular":
        if not splits.train:
            raise XBenchError(f"{spec.path}: tabular replacement {spec.replacement!r} needs training rows")
        train = np.stack([r.x for r in splits.train]).astype(np.float32)
        names = list(splits.info.get("feature_names") or [f"x{j}" for j in range(train.shape[1])])
        mean = train.mean(0)
        # a linear generator's coefficients: the truth is w * (x - baseline) for each example's own baseline
        weights = splits.info.get("truth_weights")
        weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        for r in records:
            x = np.asarray(r.x, dtype=np.float32)
            if spec.replacement == "mean":
                base = mean
            else:  # marginal: one draw per column from the training values, seeded per example
                rng = np_rng(spec.name, "marginal", r.id, spec.dataset.seed)
                base = train[rng.integers(0, len(train), size=x.shape[0]), np.arange(x.shape[0])]
            base = np.asarray(base, dtype=np.float32)
            rat = None if r.mask is None else np.asarray(r.mask, dtype=np.int8).reshape(-1)
            truth = None if r.truth is None else np.asarray(r.truth, dtype=np.float64)
            if weights is not None:
                truth = weights * (x.astype(np.float64) - base)
            out.append(DenseExample(r.id, x, np.arange(x.shape[0]), int(r.label), names, rat,
                                    base, truth, dict(r.meta)))
        return out
    for r in records:
        x = np.asarray(r.x, dtype=np.float32)
        if x.ndim != 3:
            raise XBenchError(f"{spec.path}: example {r.id}: image must be (C, H, W), got shape {x.shape}")
        c, h, w = x.shape
        fid = np.broadcast_to(np.arange(h * w).reshape(1, h, w), x.shape).reshape(-1).copy()
        names = [f"r{i}c{j}" for i in range(h) for j in range(w)]
        rat = None if r.mask is None else np.asarray(r.mask, dtype=np.int8).reshape(-1)
        if rat is not None and len(rat) != h * w:
            raise XBenchError(f"{spec.path}: example {r.id}: gold mask has {len(rat)} pixels, image has {h * w}")
        out.append(DenseExample(r.id, x, fid, int(r.label), names, rat, image_baseline(x, spec.replacement),
                                None if r.truth is None else np.asarray(r.truth, dtype=np.float64), dict(r.meta)))
    return out


def grid_groups(ex: DenseExample, patch: int) -> np.ndarray:
    """Feature -> group id for square ``patch`` x ``patch`` pixel cells (images); identity otherwise."""
    if ex.x.ndim != 3 or patch <= 1:
        return np.arange(ex.n_features)
    _, h, w = ex.x.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    n_cols = -(-w // patch)
    return (rows // patch) * n_cols + cols // patch
