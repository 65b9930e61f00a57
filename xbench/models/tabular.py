"""Tabular model sources: small torch models trained locally on the task's training rows.

- ``train-logreg``: multinomial logistic regression, one ``nn.Linear(F, C)``. Its class-c
  logit is W_c·x + β_c, so the exact attribution of feature j to that logit, from a
  baseline b, is W_cj (x_j − b_j): occlusion, Integrated Gradients and KernelSHAP must all
  return it (an analytic check on a trained model).
- ``train-mlp``: ``Linear(F, h1) → ReLU → Linear(h1, h2) → ReLU → Linear(h2, C)``.
- ``linear-generator``: no training: the data-generating model of a dataset with a known linear
  generator (``synthetic-linear``), as a logistic regression with logits (−z/2, z/2), z = w·x + b,
  so its class-1 log-odds is exactly the generator's z. The true attribution
  w ⊙ (x − baseline) is then the model's own exact attribution (times ±½ on one class's logit),
  and the ground-truth metrics measure the explainer alone.

Both go through :func:`~xbench.models.dense_train.cached_dense_model` (deterministic from the
task's model seed, cached as safetensors). When the dataset has a known linear generator
(``Splits.info['truth_weights']``), the info reports how closely the model agrees with it:
for every model, agreement of its test predictions with the generator's labels before label
noise; for ``train-logreg`` also the cosine between the generator's w and the model's log-odds
weights W_1 − W_0 (binary tasks).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from xbench.core.errors import XBenchError
from xbench.models.base import ModelSource
from xbench.models.dense_train import arrays, cached_dense_model

TRAIN_KEYS = ("epochs", "lr", "batch_size", "weight_decay")


def _n_features(splits: Any, task: Any) -> int:
    if not splits.train or np.asarray(splits.train[0].x).ndim != 1:
        raise XBenchError(f"{task.path}: field 'model.source': {task.model.source} needs tabular rows (F,)")
    return int(np.asarray(splits.train[0].x).shape[0])


def generator_agreement(model: torch.nn.Module, splits: Any) -> dict[str, float] | None:
    """How the model relates to a known linear generator, or None without one."""
    w = splits.info.get("truth_weights")
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    x, _ = arrays(splits.test)
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(-1).numpy()
    gen = (x.astype(np.float64) @ w + float(splits.info.get("truth_intercept", 0.0)) > 0).astype(int)
    out = {"prediction_agreement_with_generator": float(np.mean(pred == gen))}
    if isinstance(model, torch.nn.Linear) and model.out_features == 2:
        v = (model.weight[1] - model.weight[0]).detach().double().numpy()
        out["weight_cosine_with_generator"] = float(v @ w / (np.linalg.norm(v) * np.linalg.norm(w)))
        informative = w != 0
        out["weight_share_on_informative"] = float(np.abs(v[informative]).sum() / np.abs(v).sum())
    return out


class _TrainTabular(ModelSource):
    seeded = True

    def build(self, n_features: int, n_classes: int) -> torch.nn.Module:  # pragma: no cover - interface
        raise NotImplementedError

    def arch(self) -> dict[str, Any]:
        return {"kind": self.name}

    def check(self, task: Any) -> None:
        """Raise XBenchError naming the task file for bad parameters."""

    def load(self, task, splits) -> tuple[Any, Any, dict]:
        self.check(task)
        f, c = _n_features(splits, task), len(splits.label_names)
        model, info = cached_dense_model(task, splits, lambda: self.build(f, c),
                                         {**self.arch(), "n_features": f, "n_classes": c},
                                         {k: self.p[k] for k in TRAIN_KEYS}, self.name)
        agree = generator_agreement(model, splits)
        if agree is not None:
            info["generator"] = agree
        return model, None, info


class TrainLogReg(_TrainTabular):
    """Logistic regression (one linear layer, softmax over classes), trained with AdamW."""

    name = "train-logreg"
    params = {"epochs": 10, "lr": 0.05, "batch_size": 64, "weight_decay": 1.0}

    def build(self, n_features: int, n_classes: int) -> torch.nn.Module:
        return torch.nn.Linear(n_features, n_classes)


class TrainMLP(_TrainTabular):
    """A two-hidden-layer ReLU MLP (``hidden`` units per layer), trained with AdamW."""

    name = "train-mlp"
    params = {"hidden": [32, 16], "epochs": 10, "lr": 0.003, "batch_size": 64, "weight_decay": 0.1}

    def arch(self) -> dict[str, Any]:
        return {"kind": self.name, "hidden": list(self.p["hidden"])}

    def check(self, task: Any) -> None:
        hidden = self.p["hidden"]
        if not isinstance(hidden, list) or not hidden or any(
                not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
            raise XBenchError(f"{task.path}: field 'model.params.hidden' must be a non-empty list of positive "
                              f"integers; got {hidden!r}")

    def build(self, n_features: int, n_classes: int) -> torch.nn.Module:
        hidden = self.p["hidden"]
        layers: list[torch.nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
            width = h
        layers.append(torch.nn.Linear(width, n_classes))
        return torch.nn.Sequential(*layers)


class InteractionGenerator(torch.nn.Module):
    """The linear generator's two logits plus its pairwise terms: z = w·x + b + Σ β (x_i − μ_i)(x_j − μ_j),
    logits (−z/2, z/2). The coefficients are buffers (nothing to train or randomise but the linear part)."""

    def __init__(self, linear: torch.nn.Linear, pairs: list, means: list) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("i", torch.tensor([int(q[0]) for q in pairs]))
        self.register_buffer("j", torch.tensor([int(q[1]) for q in pairs]))
        self.register_buffer("beta", torch.tensor([float(q[2]) for q in pairs], dtype=torch.float32))
        self.register_buffer("mu", torch.tensor(means, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x - self.mu
        extra = (self.beta * u[:, self.i] * u[:, self.j]).sum(-1, keepdim=True) / 2
        return self.linear(x) + torch.cat([-extra, extra], dim=-1)


class LinearGenerator(ModelSource):
    """The dataset's linear generator itself, as a two-logit logistic regression (not trained)."""

    name = "linear-generator"
    params: dict[str, Any] = {}

    def origin(self) -> str:
        return "data generator"

    def load(self, task, splits) -> tuple[Any, Any, dict]:
        w = splits.info.get("truth_weights")
        if w is None or len(splits.label_names) != 2:
            raise XBenchError(f"{task.path}: field 'model.source': linear-generator needs a binary dataset with a "
                              f"known linear generator (Splits.info['truth_weights'], e.g. synthetic-linear)")
        w = torch.tensor(w, dtype=torch.float32)
        b = float(splits.info.get("truth_intercept", 0.0))
        pairs = splits.info.get("truth_interactions") or []
        model = torch.nn.Linear(len(w), 2)
        with torch.no_grad():  # logits (-z/2, z/2): log-odds of class 1 = z = w.x + b
            model.weight.copy_(torch.stack([-w / 2, w / 2]))
            model.bias.copy_(torch.tensor([-b / 2, b / 2]))
        if pairs:
            model = InteractionGenerator(model, pairs, splits.info["means"])
        model.eval()
        x, y = arrays(splits.test)
        with torch.no_grad():
            acc = float((model(torch.from_numpy(x)).argmax(-1).numpy() == y).mean())
        if task.model.min_accuracy is not None and acc < task.model.min_accuracy:
            raise XBenchError(f"{task.path}: field 'model.min_accuracy': the generator reaches {acc:.4f} "
                              f"held-out accuracy (label noise), below {task.model.min_accuracy}")
        return model, None, {"test_accuracy": acc, "train_seconds": 0.0, "n_test": int(len(y)),
                             "n_parameters": int(sum(p.numel() for p in model.parameters())),
                             "generator": generator_agreement(model, splits)}
