"""Runtime tasks: a validated spec, loaded into encoded examples and a model adapter."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .data import DatasetSource, Record
from .errors import XBenchError
from .models import ModelSource
from .models.adapter import TextClassifier
from .spec import TaskSpec, load_task_file


@dataclass
class TextExample:
    """One encoded input and how its tokens group into features.

    ``feature_ids[j]`` is the feature that token ``j`` belongs to, or -1 for a token
    that is never perturbed (special tokens). Features are numbered 0..F-1 in
    reading order. ``rationale`` is a 0/1 vector over the F features, or None.
    """

    id: str
    input_ids: np.ndarray
    feature_ids: np.ndarray
    label: int
    features: list[str]
    rationale: np.ndarray | None = None
    token_type_ids: np.ndarray | None = None
    truncated: bool = False

    @property
    def n_features(self) -> int:
        return len(self.features)

    @cached_property
    def movable(self) -> tuple[np.ndarray, np.ndarray]:
        """(token positions that belong to a feature, their feature ids)."""
        cols = np.flatnonzero(self.feature_ids >= 0)
        return cols, self.feature_ids[cols]

    @cached_property
    def ones(self) -> np.ndarray:
        """An all-ones attention mask of the example's length (shared, read-only)."""
        a = np.ones(len(self.input_ids), dtype=np.int64)
        a.flags.writeable = False
        return a


@dataclass
class Task:
    spec: TaskSpec
    examples: list[TextExample]
    model: TextClassifier
    label_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def fingerprint(self) -> str:
        """Hash of the examples' token ids, labels and rationales: the dataset slice's identity."""
        h = hashlib.sha256()
        for ex in self.examples:
            h.update(ex.id.encode())
            h.update(ex.input_ids.tobytes())
            h.update(ex.feature_ids.tobytes())
            h.update(str(ex.label).encode())
            if ex.rationale is not None:
                h.update(ex.rationale.tobytes())
        return h.hexdigest()[:16]


def encode_records(records: list[Record], tokenizer: Any, spec: TaskSpec) -> list[TextExample]:
    """Tokenise word records and map words to features through ``word_ids()``.

    Rationales follow the words through the tokenizer, so truncation cuts the
    rationale exactly where it cuts the input.
    """
    out = []
    for r in records:
        enc = tokenizer(r.words, is_split_into_words=True, truncation=True, max_length=spec.max_length)
        word_ids = enc.word_ids()
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        tt = np.asarray(enc["token_type_ids"], dtype=np.int64) if "token_type_ids" in enc else None
        if spec.granularity == "tokens":
            feat = np.full(len(ids), -1, dtype=np.int64)
            src_word = []
            for j, w in enumerate(word_ids):
                if w is not None:
                    feat[j] = len(src_word)
                    src_word.append(w)
            names = tokenizer.convert_ids_to_tokens([int(ids[j]) for j in range(len(ids)) if feat[j] >= 0])
        else:  # words
            kept = sorted({w for w in word_ids if w is not None})
            remap = {w: i for i, w in enumerate(kept)}
            feat = np.array([-1 if w is None else remap[w] for w in word_ids], dtype=np.int64)
            src_word = kept
            names = [r.words[w] for w in kept]
        rationale = None
        if r.rationale is not None:
            if len(r.rationale) != len(r.words):
                raise XBenchError(f"example {r.id}: rationale has {len(r.rationale)} entries "
                                  f"for {len(r.words)} words")
            rationale = np.array([int(bool(r.rationale[w])) for w in src_word], dtype=np.int8)
        truncated = len({w for w in word_ids if w is not None}) < len(r.words)
        out.append(TextExample(r.id, ids, feat, int(r.label), list(names), rationale, tt, truncated))
    return out


def resolve_task(name_or_path: str, tasks_dir: Path | None = None) -> TaskSpec:
    """A task by name (a file in ``tasks/``) or by path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return load_task_file(p)
    from .catalogue import task_specs

    specs = task_specs(tasks_dir)
    if name_or_path not in specs:
        from .registry import unknown_name

        raise XBenchError(unknown_name("task", name_or_path, sorted(specs)))
    return specs[name_or_path]


def load_task(spec: TaskSpec, n: int | None = None) -> Task:
    """Build the dataset, get (train or load) the model, and encode the first ``n`` test examples."""
    t0 = time.perf_counter()
    source = DatasetSource.registry.get(spec.dataset.source)(**spec.dataset.params)
    splits = source.load(spec.dataset.seed)
    msource = ModelSource.registry.get(spec.model.source)(**spec.model.params)
    model, tokenizer, minfo = msource.load(spec, splits)
    records = splits.test if n is None else splits.test[:n]
    examples = encode_records(records, tokenizer, spec)
    empty = [ex.id for ex in examples if ex.n_features == 0]
    if empty:
        raise XBenchError(f"{spec.path}: example {empty[0]} has no features after tokenisation")
    info = {"model": minfo, "n_examples": len(examples), "load_seconds": round(time.perf_counter() - t0, 2)}
    return Task(spec, examples, TextClassifier(model, tokenizer), splits.label_names, info)
