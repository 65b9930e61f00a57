"""``train-cnn``: a small convolutional network for image tasks, trained here and cached.

Architecture (an ``nn.Sequential`` with named layers, so ``state_dict`` keys and
:func:`xbench.metrics.sanity.layer_groups` read naturally)::

    conv1 (C -> channels[0], 3x3, padding 1) - relu1 - [pool1: 2x2 max-pool]
    conv2 (channels[0] -> channels[1], 3x3, padding 1) - relu2 - pool2 (2x2 max-pool)
    flatten - fc (-> classes)

``pool1`` is there when the image side is at least ``pool1_min_side`` (16 by default): a 16x16
shapes image is seen by conv2 at 8x8, an 8x8 digit at 8x8 too. ``relu2`` — the rectified feature maps of
the last convolutional layer, Selvaraju et al.'s A^k — is the layer Grad-CAM explains; the model
names it in its ``cam_layer`` attribute. Training, seeding, caching and the ``min_accuracy`` check
are :func:`xbench.models.dense_train.cached_dense_model`'s.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from xbench.core.errors import XBenchError
from xbench.models.base import ModelSource


class SmallCNN(nn.Sequential):
    """conv-relu-(pool)-conv-relu-pool-linear; ``cam_layer`` names the module Grad-CAM explains."""

    cam_layer = "relu2"

    def __init__(self, in_shape: tuple[int, int, int], n_classes: int, channels: tuple[int, int] = (16, 32),
                 pool1: bool = True) -> None:
        c, h, w = in_shape
        c1, c2 = channels
        layers: list[tuple[str, nn.Module]] = [("conv1", nn.Conv2d(c, c1, 3, padding=1)), ("relu1", nn.ReLU())]
        if pool1:
            layers.append(("pool1", nn.MaxPool2d(2)))
            h, w = h // 2, w // 2
        layers += [("conv2", nn.Conv2d(c1, c2, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
                   ("flatten", nn.Flatten()), ("fc", nn.Linear(c2 * (h // 2) * (w // 2), n_classes))]
        super().__init__(OrderedDict(layers))


class TrainCNN(ModelSource):
    """A small CNN trained on the task's training split (AdamW, one-cycle), cached by content."""

    name = "train-cnn"
    seeded = True
    params = {"channels": [8, 16], "pool1_min_side": 16, "epochs": 8, "lr": 0.005, "batch_size": 64,
              "weight_decay": 0.0001}

    def load(self, task: Any, splits: Any) -> tuple[torch.nn.Module, None, dict]:
        from xbench.models.dense_train import cached_dense_model

        if not splits.train:
            raise XBenchError(f"{task.path}: model 'train-cnn' needs training images")
        shape = tuple(int(s) for s in splits.train[0].x.shape)
        if len(shape) != 3:
            raise XBenchError(f"{task.path}: model 'train-cnn' needs (C, H, W) images, got shape {shape}")
        ch = self.p["channels"]
        if not (isinstance(ch, (list, tuple)) and len(ch) == 2 and all(isinstance(c, int) and c > 0 for c in ch)):
            raise XBenchError(f"{task.path}: field 'model.params.channels' must be two positive integers, got {ch!r}")
        pool1 = min(shape[1:]) >= int(self.p["pool1_min_side"])
        if min(shape[1:]) // (4 if pool1 else 2) < 1:
            raise XBenchError(f"{task.path}: model 'train-cnn': image {shape} is too small for its pooling")
        n_classes = len(splits.label_names)
        arch = {"name": "SmallCNN", "in_shape": list(shape), "channels": list(ch), "pool1": pool1,
                "n_classes": n_classes}
        train = {k: self.p[k] for k in ("epochs", "lr", "batch_size", "weight_decay")}
        model, info = cached_dense_model(task, splits, lambda: SmallCNN(shape, n_classes, tuple(ch), pool1),
                                         arch, train, self.name)
        return model, None, info
