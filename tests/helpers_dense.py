"""Dense test helpers: a linear model over tabular rows or tiny images, with answers on paper.

Class-1 logit = b + w . x (class 0 logit = 0). Removing feature j (x_j -> baseline_j) lowers the
class-1 logit by exactly w_j (x_j - baseline_j): occlusion, Integrated Gradients and KernelSHAP
on the logit all equal it.
"""
from __future__ import annotations

import numpy as np
import torch

from xbench.data.base import DatasetSource, Splits
from xbench.data.base import ArrayRecord
from xbench.models.base import ModelSource

W_TAB = np.array([2.0, 1.0, -1.0], dtype=np.float32)
TRAIN_TAB = np.array([[0, 0, 0], [2, 2, 2], [1, 4, 0], [1, 2, 2]], dtype=np.float32)  # column means 1, 2, 1
TEST_TAB = np.array([[3, 1, 0], [0, 2, 4], [1, 1, 1]], dtype=np.float32)
W_IMG = np.array([[1.0, 0.0], [0.0, -2.0]], dtype=np.float32)  # one channel, 2 x 2 pixels


class LinearDense(torch.nn.Module):
    def __init__(self, w: np.ndarray, bias: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.from_numpy(np.asarray(w, dtype=np.float32).reshape(-1)))
        self.b = torch.nn.Parameter(torch.tensor(float(bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.reshape(len(x), -1) @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], -1)


class TabularRecords(DatasetSource):
    name = "test-tabular"
    params = {}

    def load(self, seed):
        lab = lambda x: int(W_TAB @ x > 0)  # noqa: E731
        train = [ArrayRecord(f"tr{i}", x, lab(x)) for i, x in enumerate(TRAIN_TAB)]
        test = [ArrayRecord(f"t{i}", x, lab(x), mask=(np.abs(W_TAB) >= 1.5).astype(int),
                            truth=W_TAB * (x - TRAIN_TAB.mean(0))) for i, x in enumerate(TEST_TAB)]
        return Splits(train, test, ["neg", "pos"], {"feature_names": ["a", "b", "c"]})


class ImageRecords(DatasetSource):
    name = "test-images"
    params = {}

    def load(self, seed):
        xs = [np.array([[[1, 2], [3, 0.5]]]), np.array([[[0, 1], [1, 1]]]), np.array([[[2, 0], [0, 0]]])]
        recs = [ArrayRecord(f"im{i}", np.asarray(x, np.float32), int((W_IMG * x[0]).sum() > 0),
                            mask=np.array([[1, 0], [0, 0]])) for i, x in enumerate(xs)]
        return Splits(recs, recs, ["neg", "pos"])


class LinearDenseSource(ModelSource):
    name = "test-linear-dense"
    params = {"bias": 0.0, "image": False}

    def load(self, task, splits):
        return LinearDense(W_IMG if self.p["image"] else W_TAB, self.p["bias"]), None, {"test_accuracy": None}


TAB_TASK = {"name": "lin-tab", "modality": "tabular", "replacement": "mean", "rationale": True,
            "dataset": {"source": "test-tabular"}, "model": {"source": "test-linear-dense"}}
IMG_TASK = {"name": "lin-img", "modality": "image", "replacement": "zero", "rationale": True,
            "dataset": {"source": "test-images"}, "model": {"source": "test-linear-dense", "params": {"image": True}}}
