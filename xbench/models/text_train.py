"""Shared by the text classifiers xbench trains (``train-bert``, ``finetune-minilm``).

Held-out accuracy, the ``model.min_accuracy`` check, the [MASK] augmentation that keeps the
replacement token in-distribution (it chooses words without looking at the gold rationale), and the content-addressed cache of trained weights
(``models/<task>-<key>/`` under :func:`xbench.core.cache.cache_dir`, holding safetensors weights,
the tokenizer and ``meta.json``). Weights are never committed.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xbench.core.cache import cache_dir, content_key, file_sha256
from xbench.core.errors import XBenchError
from xbench.core.io import atomic_write_json


def word_tokenizer(words: list[str], specials: list[str], single: str, pair: str, model_max_length: int,
                   **kw: str) -> Any:
    """A fast word-level tokenizer (whitespace split) over ``specials`` then the sorted ``words``, whose
    post-processor adds the specials of the ``single`` and ``pair`` templates (tokenizers' syntax);
    ``kw`` go to ``PreTrainedTokenizerFast`` (``unk_token="[UNK]"``, ... required: ``unk_token``)."""
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(specials)}
    for w in sorted(set(words)):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=kw["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    used = sorted(set(re.findall(r"\[[A-Z]+\]", single + " " + pair)), key=vocab.get)
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                       special_tokens=[(t, vocab[t]) for t in used])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **kw)


def encode(tokenizer: Any, records: list, max_length: int, padding: bool | str = True) -> Any:
    """Tokenise word records (pairs as pairs) as a padded batch of tensors."""
    a = [r.words for r in records]
    kw = dict(is_split_into_words=True, truncation=True, max_length=max_length, padding=padding,
              return_tensors="pt")
    if records and records[0].words_b is not None:
        return tokenizer(a, [r.words_b for r in records], **kw)
    return tokenizer(a, **kw)


def accuracy(model: Any, tokenizer: Any, records: list, max_length: int, batch_size: int = 256) -> float:
    """Share of ``records`` whose argmax logit is the gold label (model put in eval mode)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(records), batch_size):
            chunk = records[i:i + batch_size]
            pred = model(**encode(tokenizer, chunk, max_length)).logits.argmax(-1).numpy()
            correct += int((pred == np.array([r.label for r in chunk])).sum())
    return correct / max(1, len(records))


def check_min_accuracy(task: Any, acc: float) -> None:
    """Raise an :class:`XBenchError` naming ``model.min_accuracy`` when ``acc`` is below it."""
    if task.model.min_accuracy is not None and acc < task.model.min_accuracy:
        raise XBenchError(f"{task.path}: field 'model.min_accuracy': trained model reached "
                          f"{acc:.4f} held-out accuracy, below {task.model.min_accuracy}")


def maskable(enc: Any, records: list) -> torch.Tensor:
    """Token positions that may be masked in training: every word's tokens, never special tokens.
    The gold rationale is never looked at: a model trained with its evidence words spared from the
    [MASK] augmentation would learn which words the annotators marked, supervision the evaluated
    model must not have (trainer version 3)."""
    out = torch.zeros(enc["input_ids"].shape, dtype=torch.bool)
    for b in range(len(records)):
        for j, w in enumerate(enc.word_ids(b)):
            out[b, j] = w is not None
    return out


def mask_tokens(ids: torch.Tensor, allowed: torch.Tensor, prob: float, mask_id: int,
                gen: torch.Generator) -> torch.Tensor:
    """``ids`` with each ``allowed`` position replaced by ``mask_id`` with probability ``prob``
    (draws from ``gen``; none when ``prob`` is 0)."""
    if prob <= 0:
        return ids
    hit = (torch.rand(ids.shape, generator=gen) < prob) & allowed
    return torch.where(hit, mask_id, ids)


def model_cache_path(task: Any, splits: Any, **key: Any) -> Path:
    """Where the model trained on ``splits`` with ``key`` (params, seed, trainer version...) is cached:
    content-addressed by the training and test data themselves and ``key``."""
    data = content_key([(r.words, r.label, r.rationale) for r in splits.train + splits.test])
    return cache_dir("models", f"{task.name}-{content_key({'data': data, **key})}")


def trained_meta(path: Path, task: Any, train: Any) -> dict[str, Any]:
    """The ``meta.json`` of the model cached at ``path``, after ``train()`` has written it there if it
    was not cached yet; ``cache`` says which (on a hit, ``train_seconds`` is the original training's).
    A cached model is held to the task's ``min_accuracy`` too: the bar is not part of the cache key."""
    import json

    from xbench.core.cache import model_dir_ok

    hit = model_dir_ok(path)
    if not hit:
        train()
    meta = json.loads((path / "meta.json").read_text())
    meta["cache"], meta["cache_path"] = ("hit" if hit else "miss"), str(path)
    if hit:
        check_min_accuracy(task, meta["test_accuracy"])
    return meta


def save_trained(path: Path, model: Any, tokenizer: Any, meta: dict[str, Any]) -> None:
    """Write weights (safetensors), tokenizer and ``meta.json`` into a temporary folder beside
    ``path`` and rename it into place, so a reader sees a whole model or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "meta.json", {**meta, "weights_sha256": file_sha256(tmp / "model.safetensors")})
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
