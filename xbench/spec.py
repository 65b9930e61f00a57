"""Task specs: small YAML files, validated field by field.

Errors name the file and the dotted field, e.g.
``tasks/foo.yaml: field 'dataset.source': unknown dataset source 'synthtic'``.
YAML is parsed with ``yaml.safe_load``: a task file is data, never code.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import XBenchError

MODALITIES = ("text", "image", "tabular")
GRANULARITIES = ("tokens", "words")
#: how a removed feature is replaced, per modality (the first is the default)
REPLACEMENTS_BY_MODALITY = {
    "text": ("mask", "pad", "unk", "delete"),
    "image": ("zero", "mean", "blur"),
    "tabular": ("mean", "marginal"),
}
REPLACEMENTS = tuple(r for rs in REPLACEMENTS_BY_MODALITY.values() for r in rs)
TARGETS = ("predicted", "label")


@dataclass(frozen=True)
class SourceSpec:
    source: str
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec(SourceSpec):
    min_accuracy: float | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A task: a model paired with a dataset, and how features are removed from inputs."""

    name: str
    dataset: SourceSpec
    model: ModelSpec
    description: str = ""
    modality: str = "text"
    #: what one feature is: a model token, or a dataset word (subword scores pooled)
    granularity: str = "tokens"
    #: how a removed feature is replaced: [MASK], [PAD] with attention zeroed, [UNK], or deleted
    replacement: str = "mask"
    #: which class to explain: the model's prediction, or the gold label
    target: str = "predicted"
    #: how subword scores pool into a word's score when granularity is 'words'
    pooling: str = "sum"
    #: what explainers attribute: the target's logit (captum's convention with HF models) or probability
    explained_output: str = "logit"
    max_length: int = 128
    #: text pairs: which segments (0 = first, 1 = second) may be perturbed and explained; None = all.
    #: Tokens of the other segments keep their ids and are never features.
    perturb_segments: tuple[int, ...] | None = None
    #: whether examples carry gold rationales (enables plausibility metrics)
    rationale: bool = False
    #: part of the embedded default catalogue run by ``xbench run`` with no arguments
    default: bool = False
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<task>") -> "TaskSpec":
        """Inverse of :meth:`to_dict` (validated like a task file)."""
        clean = {k: v for k, v in d.items() if v is not None}
        clean["model"] = {k: v for k, v in d["model"].items() if v is not None}
        return parse_task(clean, where)


# field -> (type, choices or None, required)
_TOP = {
    "name": (str, None, True),
    "description": (str, None, False),
    "modality": (str, MODALITIES, False),
    "granularity": (str, GRANULARITIES, False),
    "replacement": (str, REPLACEMENTS, False),
    "target": (str, TARGETS, False),
    "pooling": (str, ("sum", "mean", "max"), False),
    "explained_output": (str, ("logit", "probability"), False),
    "max_length": (int, None, False),
    "perturb_segments": (list, None, False),
    "rationale": (bool, None, False),
    "default": (bool, None, False),
    "dataset": (dict, None, True),
    "model": (dict, None, True),
}
_SOURCE = {"source": (str, None, True), "seed": (int, None, False), "params": (dict, None, False)}
_MODEL = {**_SOURCE, "min_accuracy": (float, None, False)}


def _check(where: str, data: Any, schema: dict, prefix: str = "") -> dict:
    if not isinstance(data, dict):
        raise XBenchError(f"{where}: field '{prefix.rstrip('.') or '(top level)'}' must be a mapping")
    for key in data:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise XBenchError(f"{where}: field '{prefix}{key}' is not a known field{hint}; "
                              f"valid: {', '.join(schema)}")
    for key, (typ, choices, required) in schema.items():
        if key not in data:
            if required:
                raise XBenchError(f"{where}: field '{prefix}{key}' is required")
            continue
        val = data[key]
        ok = isinstance(val, typ) and not (typ in (int, float) and isinstance(val, bool))
        if typ is float and isinstance(val, int) and not isinstance(val, bool):
            ok = True
        if not ok:
            raise XBenchError(f"{where}: field '{prefix}{key}' must be {typ.__name__}, "
                              f"got {type(val).__name__} {val!r}")
        if choices is not None and val not in choices:
            raise XBenchError(f"{where}: field '{prefix}{key}' must be one of "
                              f"{', '.join(choices)}; got {val!r}")
        if typ is int and val <= 0 and key == "max_length":
            raise XBenchError(f"{where}: field '{prefix}{key}' must be positive")
    return data


def parse_task(data: Any, where: str = "<task>") -> TaskSpec:
    """Validate a task mapping (as read from YAML) into a :class:`TaskSpec`."""
    from .data import DatasetSource
    from .models import ModelSource

    d = dict(_check(where, data, _TOP))
    ds = _check(where, d.pop("dataset"), _SOURCE, "dataset.")
    md = _check(where, d.pop("model"), _MODEL, "model.")
    for label, block, registry in (("dataset", ds, DatasetSource.registry),
                                   ("model", md, ModelSource.registry)):
        if block["source"] not in registry:
            from .registry import unknown_name

            raise XBenchError(f"{where}: field '{label}.source': "
                              + unknown_name(registry.kind, block["source"], registry.names()))
        cls = registry.get(block["source"])
        for k in block.get("params", {}) or {}:
            if k not in cls.params:
                raise XBenchError(f"{where}: field '{label}.params.{k}' is not a parameter of "
                                  f"{registry.kind} {block['source']!r}; valid: {', '.join(cls.params)}")
    modality = d.get("modality", "text")
    allowed = REPLACEMENTS_BY_MODALITY[modality]
    d.setdefault("replacement", allowed[0])
    if d["replacement"] not in allowed:
        raise XBenchError(f"{where}: field 'replacement' must be one of {', '.join(allowed)} for "
                          f"{modality} tasks; got {d['replacement']!r}")
    if "perturb_segments" in d:
        segs = d["perturb_segments"]
        if not segs or any(not isinstance(x, int) or isinstance(x, bool) or x not in (0, 1) for x in segs):
            raise XBenchError(f"{where}: field 'perturb_segments' must be a non-empty list of 0 and/or 1; "
                              f"got {segs!r}")
        d["perturb_segments"] = tuple(sorted(set(segs)))
    return TaskSpec(dataset=SourceSpec(**{"params": {}, **ds}), model=ModelSpec(**{"params": {}, **md}),
                    path=where, **d)


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """A YAML data file (``yaml.safe_load``: data, never code); an unreadable or malformed file is
    one line naming the file and, for bad YAML, the line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise XBenchError(f"{path}: cannot read {what} ({e.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise XBenchError(f"{path}: malformed YAML{at}: {problem}") from None


def load_task_file(path: str | Path) -> TaskSpec:
    return parse_task(read_yaml(path, "task file"), str(path))
