"""Task files checked against what is registered: the modality, its replacement policies, and the
dataset and model sources with their parameters. Every check is one line naming the file and field,
e.g. ``tasks/foo.yaml: field 'dataset.source': unknown dataset source 'synthtic'``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from xbench.core.errors import XBenchError
from xbench.core.io import read_yaml
from xbench.core.registry import unknown_name
from xbench.data.base import DatasetSource
from xbench.features.protocol import Modality
from xbench.models.base import ModelSource
from xbench.spec.catalogue import task_files
from xbench.spec.task import LM_FIELDS, TaskSpec, build_spec, check_choice, task_fields


def parse_task(data: Any, where: str = "<task>") -> TaskSpec:
    """Validate a task mapping (as read from YAML) into a :class:`TaskSpec`: the schema, then the
    modality, the sources and their parameters, then the replacement policy (defaulting to the
    modality's first)."""
    d, ds, md = task_fields(data, where)
    modality = d.get("modality", "text")
    if ":" in modality:  # ``pkg.module:Class``: a modality of the user's own, imported (which registers it)
        try:
            Modality.registry.get(modality)
        except XBenchError as e:
            raise XBenchError(f"{where}: field 'modality': {e}") from None
    else:
        check_choice(where, "modality", modality, tuple(Modality.registry.names()))
    for label, block, registry in (("dataset", ds, DatasetSource.registry), ("model", md, ModelSource.registry)):
        if block["source"] not in registry:
            raise XBenchError(f"{where}: field '{label}.source': "
                              + unknown_name(registry.kind, block["source"], registry.names()))
        cls = registry.get(block["source"])
        params = block.get("params", {}) or {}
        if not isinstance(params, dict):
            raise XBenchError(f"{where}: field '{label}.params' must map parameter names to values")
        for k in params:
            if k not in cls.params:
                raise XBenchError(f"{where}: field '{label}.params.{k}' is not a parameter of "
                                  f"{registry.kind} {block['source']!r}; valid: {', '.join(cls.params)}")
        bad = cls.mistyped(params)
        if bad:
            raise XBenchError(f"{where}: field '{label}.params.{bad[0]}' must be {bad[1]}, got {params[bad[0]]!r}")
    mcls = Modality.registry.get(modality)
    for k in LM_FIELDS:
        if k in d and not getattr(mcls, "generative", False):
            raise XBenchError(f"{where}: field '{k}' is for generative tasks (modality: lm), not {modality} tasks")
    if "patch" in d and "patch" not in getattr(mcls, "fields", ()):
        raise XBenchError(f"{where}: field 'patch' is for multimodal tasks (modality: multimodal), not {modality} tasks")
    allowed = mcls.replacements
    d.setdefault("replacement", allowed[0])
    check_choice(where, "replacement", d["replacement"], allowed, f"for {modality} tasks")
    return build_spec(d, ds, md, where)


def spec_from_dict(d: dict[str, Any], where: str = "<task>") -> TaskSpec:
    """Inverse of :meth:`TaskSpec.to_dict` (e.g. a manifest's task), validated like a task file."""
    clean = {k: v for k, v in d.items() if v is not None}
    clean["model"] = {k: v for k, v in d["model"].items() if v is not None}
    return parse_task(clean, where)


def load_task_file(path: str | Path) -> TaskSpec:
    return parse_task(read_yaml(path, "task file"), str(path))


def task_specs(folder: Path | None = None) -> dict[str, TaskSpec]:
    """Every task spec in the folder, by name; a duplicate name is an error naming both files."""
    out: dict[str, TaskSpec] = {}
    for path in task_files(folder):
        spec = load_task_file(path)
        if spec.name in out:
            raise XBenchError(f"{path}: field 'name': task {spec.name!r} is also defined in {out[spec.name].path}")
        out[spec.name] = spec
    return out


def resolve_task(name_or_path: str, tasks_dir: Path | None = None) -> TaskSpec:
    """A task by name (a file in ``tasks/``) or by path to a YAML file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return load_task_file(p)
    specs = task_specs(tasks_dir)
    if name_or_path not in specs:
        raise XBenchError(unknown_name("task", name_or_path, sorted(specs)))
    return specs[name_or_path]
