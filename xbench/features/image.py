"""The image modality: ``(C, H, W)`` float arrays whose features are pixels (a pixel's channels share
one feature), and pixel groups for explainers and metrics that perturb groups.

Removal policies (the baseline a removed pixel takes, fixed per example at encoding):

- ``zero``: 0 everywhere;
- ``mean``: each channel's mean over the image (Quantus' ``perturb_baseline="mean"``);
- ``blur``: the image under a Gaussian blur of sigma = max(H, W) / 8 pixels (Fong & Vedaldi 2017).

Pixel groups assign every pixel feature a group id 0..G-1. Perturbation explainers remove whole
groups (captum's ``feature_mask``), so each pixel gets its group's score; patch metrics sum pixel
scores per group and remove groups in order.

- ``patch``: the side of a square cell in pixels; ``"auto"`` is max(1, image side // 8) (2 pixels
  for a 16x16 image: 64 cells; 1 for an 8x8 digit: every pixel its own group).
- ``segmentation: grid`` (default): ``patch`` x ``patch`` cells in row-major order
  (:func:`grid_groups`); ``slic``: SLIC superpixels (Achanta et al. 2012,
  ``skimage.segmentation.slic``, compactness 0.1 for intensities in [0, 1]; deterministic) with as
  many segments as the grid has cells, as LIME's image explainer segments its inputs (it uses
  quickshift).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from xbench.core.errors import XBenchError
from xbench.features.dense import DenseClassifier, DenseExample, DenseRemoval
from xbench.features.protocol import Modality

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime

POLICIES = ("zero", "mean", "blur")
SEGMENTATIONS = ("grid", "slic")
#: the explainer parameters :meth:`ImageModality.groups` reads
GROUP_PARAMS = {"patch": "auto", "segmentation": "grid"}


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
    raise XBenchError(f"unknown image replacement {policy!r}; valid: {', '.join(POLICIES)}")


def grid_groups(ex: DenseExample, patch: int) -> np.ndarray:
    """Feature -> group id for square ``patch`` x ``patch`` pixel cells (images); identity otherwise."""
    if ex.x.ndim != 3 or patch <= 1:
        return np.arange(ex.n_features)
    _, h, w = ex.x.shape
    rows, cols = np.divmod(np.arange(h * w), w)
    n_cols = -(-w // patch)
    return (rows // patch) * n_cols + cols // patch


def check_image_params(p: dict, who: str) -> None:
    """Raise XBenchError unless ``p['patch']`` and ``p['segmentation']`` (where present) are valid."""
    patch = p.get("patch", "auto")
    if patch != "auto" and (isinstance(patch, bool) or not isinstance(patch, int) or patch < 1):
        raise XBenchError(f"{who}: parameter 'patch' must be 'auto' or an integer >= 1, got {patch!r}")
    if p.get("segmentation", "grid") not in SEGMENTATIONS:
        raise XBenchError(f"{who}: parameter 'segmentation' must be one of {', '.join(SEGMENTATIONS)}, "
                          f"got {p['segmentation']!r}")


def patch_side(ex: Any, patch: Any, who: str = "explainer") -> int:
    """The patch side in pixels for an image example: ``patch`` itself, or side // 8 for ``"auto"``."""
    check_image_params({"patch": patch}, who)
    return max(1, max(ex.x.shape[-2:]) // 8) if patch == "auto" else int(patch)


def image_groups(ex: Any, patch: Any, segmentation: str = "grid", who: str = "explainer") -> np.ndarray:
    """Pixel feature -> group id (0..G-1) for an image example (see the module docstring)."""
    check_image_params({"segmentation": segmentation}, who)
    side = patch_side(ex, patch, who)
    if segmentation == "grid":
        return grid_groups(ex, side)
    try:
        from skimage.segmentation import slic
    except ImportError:  # pragma: no cover - scikit-image comes with quantus
        raise XBenchError(f"{who}: segmentation 'slic' needs scikit-image (pip install scikit-image)") from None
    _, h, w = ex.x.shape
    n_segments = (-(-h // side)) * (-(-w // side))
    img = np.moveaxis(np.asarray(ex.x, dtype=np.float64), 0, -1)
    seg = slic(img, n_segments=n_segments, compactness=0.1, channel_axis=-1, start_label=0,
               enforce_connectivity=True)
    _, ids = np.unique(seg.reshape(-1), return_inverse=True)  # contiguous 0..G-1
    return ids.astype(np.int64)


class ImageModality(Modality):
    """Images classified by a ``torch.nn.Module``: features are pixels, removed to a baseline image."""

    name = "image"
    replacements = POLICIES
    provides = frozenset({"gradients"})
    noise = "input"
    grouped = True

    def removal(self, splits: Any, tokenizer: Any) -> DenseRemoval:
        policy = self.spec.replacement
        what = {"zero": "0 everywhere", "mean": "each channel's mean over the image",
                "blur": "the image under a Gaussian blur, sigma = max(H, W) / 8"}[policy]
        return DenseRemoval(policy, lambda x, example_id: image_baseline(x, policy), what)

    def encode(self, records: list, splits: Any, tokenizer: Any, removal: DenseRemoval) -> list[DenseExample]:
        spec, out = self.spec, []
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
            out.append(DenseExample(r.id, x, fid, int(r.label), names, rat, removal.baseline(x, r.id),
                                    None if r.truth is None else np.asarray(r.truth, dtype=np.float64),
                                    dict(r.meta)))
        return out

    def adapter(self, model: Any, tokenizer: Any, splits: Any, runtime: "Runtime") -> DenseClassifier:
        return DenseClassifier(model, len(splits.label_names), runtime=runtime)

    def groups(self, ex: Any, **params: Any) -> np.ndarray:
        return image_groups(ex, params.get("patch", "auto"), params.get("segmentation", "grid"),
                            params.get("who", "explainer"))

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]:
        return {"pooling": "sum over a feature's input elements"} if scores == "tokens" else {}

    def view(self, ex: DenseExample) -> tuple[dict[str, Any], dict[str, Any]]:
        return ({"shape": list(ex.x.shape[-2:])},
                {"values": [round(float(v), 4) for v in ex.x.mean(axis=0).reshape(-1)]})
