"""Image datasets: ``digits`` (scikit-learn's 8x8 handwritten digits) and ``synthetic-shapes``.

``digits``
    ``sklearn.datasets.load_digits``: 1,797 grey-level 8x8 images of the digits 0-9, pixel values
    0..16 scaled to [0, 1], as ``(1, 8, 8)`` float32; a stratified train/test split
    (``sklearn.model_selection.train_test_split``) seeded by the task's dataset seed. No gold mask:
    which pixels "are" the evidence for a digit is not defined (a 0 differs from an 8 by ink that is
    *absent* in its centre as much as by the ink that is present, and the stroke pixels are every
    pixel a human could point at), so localisation and plausibility metrics do not apply.

``synthetic-shapes``
    Generated images on which localisation is a correctness check. The generation rule:

    - the canvas is ``(1, size, size)`` (default 16), split into a 2 x 2 grid of cells;
    - the class is the type of ONE *deciding* shape, from ``CLASS_SHAPES`` (square, disk,
      triangle, cross; the first ``n_classes`` of them), drawn uniformly;
    - ``n_distractors`` further shapes are drawn uniformly, i.i.d., from ``DISTRACTORS`` (ring,
      horizontal bar, vertical bar), whatever the label: they carry no information about it;
    - every shape goes into its own cell (the cells are a random permutation), with a radius r drawn
      uniformly from ``min_radius..max_radius`` (2..3; the geometry of each type at radius r is
      :func:`shape_masks`'s: every shape spans (2r + 1) pixels) and a centre drawn uniformly among the positions
      where the shape fits inside its cell less the cell's last row and column, so shapes never
      touch or overlap;
    - shape pixels have intensity drawn uniformly from [0.6, 1] per shape (independent of the
      label); every other pixel is background noise, uniform in [0, ``noise``];
    - the gold mask is exactly the deciding shape's pixels.

    Since the label is a function of the deciding shape alone and every other pixel is independent
    of the label, a model that classifies accurately must use the deciding shape, and a correct
    explanation must put its mass there. Draws come from ``np_rng('synthetic-shapes', seed, split)``
    and the whole split is rendered at once with broadcasting (n x shapes x H x W boolean masks).
"""
from __future__ import annotations

import numpy as np

from xbench.core.errors import XBenchError
from xbench.core.seeding import derive_seed, np_rng
from xbench.data.base import DatasetSource, Splits

CLASS_SHAPES = ("square", "disk", "triangle", "cross")
DISTRACTORS = ("ring", "hbar", "vbar")
_SHAPES = CLASS_SHAPES + DISTRACTORS


class Digits(DatasetSource):
    """scikit-learn's 8x8 handwritten digits, scaled to [0, 1]; no gold mask."""

    name = "digits"
    params = {"test_size": 0.25}

    def load(self, seed: int) -> Splits:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        from xbench.data.base import ArrayRecord

        t = self.p["test_size"]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0 < t < 1:
            raise XBenchError(f"dataset 'digits': parameter 'test_size' must be a number in (0, 1), got {t!r}")
        d = load_digits()
        x = (d.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8)
        y = d.target.astype(np.int64)
        idx = np.arange(len(y))
        tr, te = train_test_split(idx, test_size=t, stratify=y, random_state=derive_seed("digits", seed) % 2**32)

        def records(ids: np.ndarray) -> list:
            return [ArrayRecord(f"digits-{i}", x[i], int(y[i]), meta={"index": int(i)}) for i in ids]

        return Splits(records(np.sort(tr)), records(np.sort(te)), [str(k) for k in range(10)],
                      {"source": "sklearn.datasets.load_digits", "shape": [1, 8, 8]})

    def size(self) -> str:
        n_test = -(-1797 * float(self.p["test_size"]) // 1)  # sklearn's split: ⌈t·n⌉ test examples
        return f"{1797 - int(n_test)}/{int(n_test)}"


def shape_masks(kind: np.ndarray, cy: np.ndarray, cx: np.ndarray, r: np.ndarray, size: int) -> np.ndarray:
    """Boolean pixel masks (..., size, size) of shapes with type index ``kind`` (into ``_SHAPES``),
    centre (cy, cx) and radius r (all arrays of one shape ``...``). Every shape lies inside the
    (2r + 1)-pixel square around its centre."""
    g = np.arange(size)
    dy = g[:, None] - cy[..., None, None]  # (..., size, 1)
    dx = g[None, :] - cx[..., None, None]  # (..., 1, size)
    r = r[..., None, None]
    ady, adx = np.abs(dy), np.abs(dx)
    cheb = np.maximum(ady, adx)
    box = cheb <= r
    half = np.maximum(1, r // 3)  # half-thickness of bars and of the cross's arms (1 px at r <= 5)
    masks = {
        "square": box,
        "disk": dy ** 2 + dx ** 2 <= r ** 2 + r,
        "triangle": box & (2 * adx <= dy + r),  # apex at the top row, base on the bottom row
        "cross": box & ((ady < half) | (adx < half)),
        "ring": cheb == r,  # a one-pixel outline
        "hbar": box & (ady < half),
        "vbar": box & (adx < half),
    }
    out = np.zeros(np.broadcast_shapes(dy.shape, dx.shape), dtype=bool)
    for j, name in enumerate(_SHAPES):
        out |= (kind[..., None, None] == j) & masks[name]
    return out


class SyntheticShapes(DatasetSource):
    """Generated images: one deciding shape sets the class, among label-independent distractor shapes;
    the gold mask is the deciding shape (see the module docstring for the exact rule)."""

    name = "synthetic-shapes"
    params = {"n_train": 4000, "n_test": 1000, "size": 16, "n_classes": 4, "n_distractors": 2,
              "min_radius": 2, "max_radius": 3, "noise": 0.1}

    def _check(self) -> None:
        p = self.p
        cell = int(p["size"]) // 2
        if not (2 <= p["n_classes"] <= len(CLASS_SHAPES)):
            raise XBenchError(f"dataset 'synthetic-shapes': parameter 'n_classes' must be in 2..{len(CLASS_SHAPES)}")
        if not (0 <= p["n_distractors"] <= 3):
            raise XBenchError("dataset 'synthetic-shapes': parameter 'n_distractors' must be in 0..3 (2 x 2 cells)")
        if not (2 <= p["min_radius"] <= p["max_radius"]) or 2 * p["max_radius"] + 2 > cell:
            raise XBenchError(f"dataset 'synthetic-shapes': need 2 <= min_radius <= max_radius and "
                              f"2 * max_radius + 2 <= size / 2 = {cell}")
        if not (0 <= p["noise"] < 0.6):
            raise XBenchError("dataset 'synthetic-shapes': parameter 'noise' must be in [0, 0.6)")

    def load(self, seed: int) -> Splits:
        self._check()
        out = {}
        for split in ("train", "test"):
            out[split] = self.generate(int(self.p[f"n_{split}"]), np_rng("synthetic-shapes", seed, split), split)
        names = list(CLASS_SHAPES[:self.p["n_classes"]])
        return Splits(out["train"], out["test"], names,
                      {"shape": [1, self.p["size"], self.p["size"]], "distractors": list(DISTRACTORS)})

    def generate(self, n: int, rng: np.random.Generator, split: str) -> list:
        """``n`` records; every draw vectorised over the split."""
        from xbench.data.base import ArrayRecord

        p = self.p
        size, k = int(p["size"]), 1 + int(p["n_distractors"])
        cell = size // 2
        label = rng.integers(0, p["n_classes"], size=n)
        kind = np.concatenate([label[:, None],
                               len(CLASS_SHAPES) + rng.integers(0, len(DISTRACTORS), size=(n, k - 1))], axis=1)
        cells = np.argsort(rng.random((n, 4)), axis=1)[:, :k]  # distinct cells, shape 0 = the deciding one
        r = rng.integers(p["min_radius"], p["max_radius"] + 1, size=(n, k))
        # centre: uniform among positions where the (2r+1)-square fits in the cell less its last row/column
        oy = r + np.floor(rng.random((n, k)) * (cell - 1 - 2 * r)).astype(np.int64)
        ox = r + np.floor(rng.random((n, k)) * (cell - 1 - 2 * r)).astype(np.int64)
        cy, cx = (cells // 2) * cell + oy, (cells % 2) * cell + ox
        masks = shape_masks(kind, cy, cx, r, size)  # (n, k, size, size)
        level = rng.uniform(0.6, 1.0, size=(n, k))
        x = rng.uniform(0.0, p["noise"], size=(n, size, size))
        ink = np.max(masks * level[..., None, None], axis=1)
        x = np.where(masks.any(axis=1), ink, x).astype(np.float32)
        gold = masks[:, 0].astype(np.int8)
        return [ArrayRecord(f"{split}-{i}", x[i][None], int(label[i]), mask=gold[i],
                            meta={"shapes": [_SHAPES[j] for j in kind[i]]}) for i in range(n)]
