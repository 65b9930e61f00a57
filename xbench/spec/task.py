"""Task specs: the schema of a task file, checked field by field. Pure data: nothing here knows which
dataset sources, model sources or modalities exist (:mod:`xbench.tasks.catalogue` checks the names
against the registries, with the same one-line errors).

Errors name the file and the dotted field, e.g.
``tasks/foo.yaml: field 'dataset.source': unknown dataset source 'synthtic'``.
YAML is parsed with ``yaml.safe_load``: a task file is data, never code.
"""
from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

from xbench.core.errors import XBenchError

GRANULARITIES = ("tokens", "words")
#: fields only generative (``modality: lm``) tasks take
LM_FIELDS = ("lm_target", "chat_template", "system_prompt", "max_new_tokens")
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
    #: the modality (a registered :class:`xbench.features.protocol.Modality`: text, image, tabular, ...)
    modality: str = "text"
    #: what one feature is: a model token, or a dataset word (subword scores pooled)
    granularity: str = "tokens"
    #: how a removed feature is replaced (the modality's policies; its first is the default)
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
    #: an example without a (non-empty) rationale: a failure ('fail'), or expected and skipped ('skip',
    #: e.g. the non-toxic class of a toxicity set)
    missing_rationale: str = "fail"
    #: part of the embedded default catalogue run by ``xbench run`` with no arguments
    default: bool = False
    #: at most this many test examples in any run (the run's ``n`` caps it further), e.g. to keep a
    #: costly task within the default run's time; None = as many as the run asks for
    max_examples: int | None = None
    #: generative (``modality: lm``) tasks: what is explained (next_token, continuation, contrastive)
    lm_target: str | None = None
    #: generative tasks: the prompt goes through the tokenizer's chat template as one user turn
    chat_template: bool | None = None
    #: generative tasks: a system message for the chat template
    system_prompt: str | None = None
    #: generative tasks with ``lm_target: continuation`` and ``target: predicted``: how many tokens the
    #: greedy continuation has (default: as many as the dataset's answer, else 1)
    max_new_tokens: int | None = None
    #: multimodal tasks: the side, in pixels, of the square image patches that are the image's
    #: features (None: max(1, image side // 6))
    patch: int | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("path")
        if d["patch"] is None:  # a multimodal field: absent elsewhere, so other tasks' config hashes stay as they were
            d.pop("patch")
        return d


# field -> (type, choices or None, required)
TOP_FIELDS = {
    "name": (str, None, True),
    "description": (str, None, False),
    "modality": (str, None, False),
    "granularity": (str, GRANULARITIES, False),
    "replacement": (str, None, False),
    "target": (str, TARGETS, False),
    "pooling": (str, ("sum", "mean", "max"), False),
    "explained_output": (str, ("logit", "probability"), False),
    "max_length": (int, None, False),
    "perturb_segments": (list, None, False),
    "rationale": (bool, None, False),
    "missing_rationale": (str, ("fail", "skip"), False),
    "default": (bool, None, False),
    "max_examples": (int, None, False),
    "lm_target": (str, ("next_token", "continuation", "contrastive"), False),
    "chat_template": (bool, None, False),
    "system_prompt": (str, None, False),
    "max_new_tokens": (int, None, False),
    "patch": (int, None, False),
    "dataset": (dict, None, True),
    "model": (dict, None, True),
}
SOURCE_FIELDS = {"source": (str, None, True), "seed": (int, None, False), "params": (dict, None, False)}
MODEL_FIELDS = {**SOURCE_FIELDS, "min_accuracy": (float, None, False)}


def check_fields(where: str, data: Any, schema: dict, prefix: str = "") -> dict:
    """``data`` checked against ``schema`` (field -> (type, choices, required)): unknown fields (with a
    close match suggested), missing required ones, wrong types and values outside the choices are one
    ``XBenchError`` line naming ``where`` and the dotted field."""
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
        if typ is int and val <= 0 and key in ("max_length", "max_new_tokens", "max_examples", "patch"):
            raise XBenchError(f"{where}: field '{prefix}{key}' must be positive")
    return data


def check_choice(where: str, field_name: str, value: str, choices: tuple[str, ...], what: str = "") -> None:
    """One line when ``value`` is not among ``choices`` (``what`` qualifies them, e.g. 'for text tasks')."""
    if value not in choices:
        raise XBenchError(f"{where}: field '{field_name}' must be one of {', '.join(choices)}"
                          f"{' ' + what if what else ''}; got {value!r}")


def task_fields(data: Any, where: str = "<task>") -> tuple[dict, dict, dict]:
    """(top-level fields, dataset block, model block) of a task mapping, schema-checked; no name is
    looked up in a registry here."""
    d = dict(check_fields(where, data, TOP_FIELDS))
    ds = check_fields(where, d.pop("dataset"), SOURCE_FIELDS, "dataset.")
    md = check_fields(where, d.pop("model"), MODEL_FIELDS, "model.")
    if "perturb_segments" in d:
        segs = d["perturb_segments"]
        if not segs or any(not isinstance(x, int) or isinstance(x, bool) or x not in (0, 1) for x in segs):
            raise XBenchError(f"{where}: field 'perturb_segments' must be a non-empty list of 0 and/or 1; "
                              f"got {segs!r}")
        d["perturb_segments"] = tuple(sorted(set(segs)))
    return d, ds, md


def build_spec(top: dict, ds: dict, md: dict, where: str) -> TaskSpec:
    """The :class:`TaskSpec` of checked fields (see :func:`task_fields`)."""
    return TaskSpec(dataset=SourceSpec(**{"params": {}, **ds}), model=ModelSpec(**{"params": {}, **md}),
                    path=where, **top)
