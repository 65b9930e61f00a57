"""Training and caching for the small torch models xbench trains on dense data (CNNs, MLPs,
logistic regression).

:func:`cached_dense_model` is the whole contract a dense model source needs: give it a
constructor, the splits and the training parameters; it trains deterministically from the
task's model seed (explicit ``torch.Generator`` for batch order, parameter init under a
seeded fork of the global RNG), checks ``min_accuracy``, and caches the weights as
safetensors with a ``meta.json`` under the xbench cache, keyed by the content of the data,
the architecture, the parameters and the trainer version. Weights are never committed.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable

import numpy as np
import torch

from xbench.core.cache import cache_dir, content_key, model_dir_ok
from xbench.core.io import atomic_write, atomic_write_json
from xbench.core.seeding import isolated_global_rng, torch_gen
from xbench.models.loop import fit
from xbench.models.text_train import check_min_accuracy

TRAINER_VERSION = 2  # 2: trained on loop.TRAIN_THREADS threads


def arrays(records: list) -> tuple[np.ndarray, np.ndarray]:
    return (np.stack([np.asarray(r.x, dtype=np.float32) for r in records]),
            np.array([int(r.label) for r in records], dtype=np.int64))


def dense_accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            pred = model(torch.from_numpy(x[i:i + batch_size])).argmax(-1).numpy()
            correct += int((pred == y[i:i + batch_size]).sum())
    return correct / max(1, len(x))


def train_dense(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float,
                batch_size: int, weight_decay: float, seed_parts: tuple) -> None:
    """AdamW with a one-cycle schedule and cross-entropy; batch order from a seeded generator."""
    gen = torch_gen(*seed_parts, "batches")
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, epochs * ((len(y) + batch_size - 1) // batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    model.train()
    fit(len(y), epochs, batch_size, gen, opt, sched,
        lambda idx: torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]))
    model.eval()


def cached_dense_model(task: Any, splits: Any, build: Callable[[], torch.nn.Module], arch: dict[str, Any],
                       train: dict[str, Any], source: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(trained model, info) for ``build()`` trained on ``splits.train``; from the cache when the same
    data, architecture, training parameters and seed were trained before.

    ``train`` holds ``epochs``, ``lr``, ``batch_size``, ``weight_decay``."""
    x_tr, y_tr = arrays(splits.train)
    x_te, y_te = arrays(splits.test)
    data = content_key([x_tr.tobytes(), y_tr.tobytes(), x_te.tobytes(), y_te.tobytes()])
    key = content_key({"data": data, "arch": arch, "train": train, "seed": task.model.seed,
                       "trainer": TRAINER_VERSION, "source": source, "torch": torch.__version__.split("+")[0]})
    path = cache_dir("models", f"{task.name}-{key}")
    with isolated_global_rng(task.model.seed):  # parameter init draws from torch's global RNG
        model = build()
    meta = load_cached(path, model)
    hit = meta is not None
    if not hit:
        t0 = time.perf_counter()
        with isolated_global_rng(task.model.seed):  # dropout, if any
            train_dense(model, x_tr, y_tr, seed_parts=(source, task.name, task.model.seed), **train)
        train_s = time.perf_counter() - t0
        acc = dense_accuracy(model, x_te, y_te)
        meta = {"test_accuracy": acc, "train_seconds": round(train_s, 2), "n_train": int(len(y_tr)),
                "n_test": int(len(y_te)), "seed": task.model.seed, "arch": arch, "train": train,
                "n_parameters": int(sum(p.numel() for p in model.parameters()))}
        if task.model.min_accuracy is None or acc >= task.model.min_accuracy:
            save_cached(path, model, meta)
    check_min_accuracy(task, meta["test_accuracy"])
    model.eval()
    return model, {**meta, "cache": "hit" if hit else "miss", "cache_path": str(path)}


def load_cached(path: Any, model: torch.nn.Module) -> dict[str, Any] | None:
    """The cached weights at ``path`` loaded into ``model`` and the cached ``meta.json``; None if the
    folder is not a whole cached model."""
    from safetensors.torch import load_file

    if not model_dir_ok(path):
        return None
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return json.loads((path / "meta.json").read_text())


def save_cached(path: Any, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model``'s weights (safetensors) and ``meta`` (with the weights' sha256 added, in place)
    into ``path``; the meta last, so a folder with a matching meta is whole."""
    path.mkdir(parents=True, exist_ok=True)
    blob = _safetensors_bytes({k: v.contiguous() for k, v in model.state_dict().items()})
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    atomic_write(path / "model.safetensors", lambda f: f.write(blob), mode="wb")
    atomic_write_json(path / "meta.json", meta)


def _safetensors_bytes(state: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(state)
