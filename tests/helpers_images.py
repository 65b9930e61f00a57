"""Image test helpers: 4x4 one-channel images with answers on paper.

``W_PATCH`` is a linear class-1 logit (class 0's is 0) whose 2x2 patches sum to 2, 1, -1 and 0.5
(row-major: top-left, top-right, bottom-left, bottom-right), so removing a whole patch lowers the
logit by its sum (on the all-ones image, zero baseline). ``TinyCam`` is a model whose Grad-CAM is
known in closed form (see its docstring).
"""
from __future__ import annotations

import numpy as np
import torch

from helpers_dense import LinearDense
from xbench.data.base import DatasetSource, Splits
from xbench.data.base import ArrayRecord
from xbench.models.base import ModelSource

W_PATCH = np.array([[1.0, 0.5, 0.5, 0.5],
                    [0.5, 0.0, 0.0, 0.0],
                    [-0.5, -0.5, 0.25, 0.25],
                    [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
#: a weight for every pixel (no zeros), for the stability metrics' relative changes
W_RAMP = (np.arange(1, 17, dtype=np.float32) / 8).reshape(4, 4)
GOLD = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # the top-left patch
X_SIGNED = np.array([[0.5, -1.0, 2.0, 0.0], [-0.5, 1.0, -2.0, 1.5], [1.0, 1.0, -1.0, 0.25],
                     [0.0, -0.25, 3.0, -3.0]], dtype=np.float32)


class Images4(DatasetSource):
    """Two 4x4 images: all ones, and a signed one (for Grad-CAM); gold mask: the top-left patch."""

    name = "test-images-4x4"
    params = {}

    def load(self, seed):
        xs = [np.ones((1, 4, 4), np.float32), X_SIGNED[None]]
        recs = [ArrayRecord(f"q{i}", x, 1, mask=GOLD) for i, x in enumerate(xs)]
        return Splits(recs, recs, ["neg", "pos"])


class TinyCam(torch.nn.Module):
    """conv (1 -> 2 channels, 1x1 kernels +1 and -1, no bias, ``stride``) - ReLU ``act`` - class-1 logit
    z = Σ_ij (2·A0_ij − A1_ij), class-0 logit 0·z. Grad-CAM at ``act`` for class 1: α = (2, −1), so
    L = ReLU(2·relu(x) − relu(−x)) = 2·relu(x), and without the final ReLU 2·relu(x) − relu(−x)."""

    cam_layer = "act"

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 1, stride=stride, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
        self.act = torch.nn.ReLU()
        self.register_buffer("v", torch.tensor([2.0, -1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.act(self.conv(x)).sum((2, 3)) * self.v).sum(-1)
        return torch.stack([0 * z, z], -1)


class Images4Model(ModelSource):
    name = "test-images-4x4-model"
    params = {"kind": "patch", "bias": 0.0, "stride": 1}

    def load(self, task, splits):
        if self.p["kind"] == "cam":
            return TinyCam(self.p["stride"]), None, {"test_accuracy": None}
        w = W_PATCH if self.p["kind"] == "patch" else W_RAMP
        return LinearDense(w, self.p["bias"]), None, {"test_accuracy": None}


def task4(kind: str = "patch", bias: float = 0.0, stride: int = 1, **over):
    from xbench.tasks.catalogue import parse_task
    from xbench.tasks.task import load_task

    spec = {"name": "img4", "modality": "image", "replacement": "zero", "rationale": True,
            "dataset": {"source": "test-images-4x4"},
            "model": {"source": "test-images-4x4-model", "params": {"kind": kind, "bias": bias, "stride": stride}},
            **over}
    return load_task(parse_task(spec, "img4.yaml"))
