"""Runtime tasks: a validated spec, loaded into encoded examples and a model adapter."""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import DatasetSource
from .errors import XBenchError
from .models import ModelSource
from .dense import DenseExample, encode_arrays
from .models.adapter import DenseClassifier, TextClassifier
from .text import TextExample, encode_records
from .spec import TaskSpec, load_task_file


@dataclass
class Task:
    spec: TaskSpec
    examples: list[TextExample] | list[DenseExample]
    model: TextClassifier | DenseClassifier
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
            h.update(ex.digest())
            h.update(str(ex.label).encode())
            if ex.rationale is not None:
                h.update(ex.rationale.tobytes())
        return h.hexdigest()[:16]


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


def sources(spec: TaskSpec) -> tuple[DatasetSource, ModelSource]:
    """The task's dataset and model sources, resolving relative paths against its file."""
    source = DatasetSource.registry.get(spec.dataset.source)(**spec.dataset.params)
    msource = ModelSource.registry.get(spec.model.source)(**spec.model.params)
    source.task_path = msource.task_path = spec.path  # data and model folders may be relative to the file
    return source, msource


def _check_sources(spec: TaskSpec, srcs: tuple[DatasetSource, ModelSource]) -> None:
    for s in srcs:
        reason = s.unavailable()
        if reason:
            raise XBenchError(f"{spec.path}: {reason}")


def check_available(specs: list[TaskSpec]) -> None:
    """Raise the first task's one-line reason it cannot run here (data missing, network needed). Quick:
    sources answer without waiting on the network."""
    for spec in specs:
        _check_sources(spec, sources(spec))


def load_task(spec: TaskSpec, n: int | None = None) -> Task:
    """Build the dataset, get (train or load) the model, and encode the first ``n`` test examples."""
    t0 = time.perf_counter()
    source, msource = sources(spec)
    _check_sources(spec, (source, msource))
    splits = source.load(spec.dataset.seed)
    model, tokenizer, minfo = msource.load(spec, splits)
    records = splits.test if n is None else splits.test[:n]
    if spec.modality == "text":
        examples = encode_records(records, tokenizer, spec)
        adapter = TextClassifier(model, tokenizer)
    else:
        examples = encode_arrays(records, splits, spec)
        adapter = DenseClassifier(model, len(splits.label_names))
    empty = [ex.id for ex in examples if ex.n_features == 0]
    if empty:
        raise XBenchError(f"{spec.path}: example {empty[0]} has no features after tokenisation")
    info = {"model": minfo, "n_examples": len(examples), "load_seconds": round(time.perf_counter() - t0, 2)}
    return Task(spec, examples, adapter, splits.label_names, info)
