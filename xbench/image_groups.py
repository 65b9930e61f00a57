"""Pixel groups for image explainers and metrics: square patches (a grid) or SLIC superpixels.

A group map assigns every pixel feature of an image example a group id 0..G-1. Perturbation
explainers remove whole groups (captum's ``feature_mask``), so each pixel gets its group's score;
patch metrics sum pixel scores per group and remove groups in order.

- ``patch``: the side of a square cell in pixels; ``"auto"`` is max(1, image side // 8) (2 pixels
  for a 16x16 image: 64 cells; 1 for an 8x8 digit: every pixel its own group).
- ``segmentation: grid`` (default): ``patch`` x ``patch`` cells in row-major order
  (:func:`xbench.dense.grid_groups`); ``slic``: SLIC superpixels (Achanta et al. 2012,
  ``skimage.segmentation.slic``, compactness 0.1 for intensities in [0, 1]; deterministic) with as
  many segments as the grid has cells, as LIME's image explainer segments its inputs (it uses
  quickshift).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .dense import grid_groups
from .errors import XBenchError

SEGMENTATIONS = ("grid", "slic")


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
