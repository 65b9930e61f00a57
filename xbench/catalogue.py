"""The catalogue on disk: task specs in ``tasks/`` and metric suites in ``metrics/``.

Both folders sit at the repository root (beside the package). ``XBENCH_TASKS`` and
``XBENCH_SUITES`` point elsewhere.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import XBenchError
from .spec import TaskSpec, load_task_file, read_yaml

ROOT = Path(__file__).resolve().parent.parent


def _folder(env: str, name: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    for base in (ROOT, Path.cwd()):
        if (base / name).is_dir():
            return base / name
    return ROOT / name


def tasks_dir() -> Path:
    return _folder("XBENCH_TASKS", "tasks")


def suites_dir() -> Path:
    return _folder("XBENCH_SUITES", "metrics")


def task_specs(folder: Path | None = None) -> dict[str, TaskSpec]:
    """Every task spec in the folder, by name; a duplicate name is an error naming both files."""
    out: dict[str, TaskSpec] = {}
    for path in sorted((folder or tasks_dir()).glob("*.y*ml")):
        spec = load_task_file(path)
        if spec.name in out:
            raise XBenchError(f"{path}: field 'name': task {spec.name!r} is also defined in {out[spec.name].path}")
        out[spec.name] = spec
    return out


@dataclass
class Suite:
    """A metric suite: which metrics with which parameters, and optionally explainers and n."""

    name: str
    metrics: list[tuple[str, dict[str, Any]]]
    explainers: list[tuple[str, dict[str, Any]]] | None = None
    n: int | None = None
    description: str = ""
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _entries(where: str, field_name: str, items: Any, registry: Any) -> list[tuple[str, dict]]:
    """Entries are ``name`` or ``{name: {param: value}}``; names and params are checked."""
    if not isinstance(items, list):
        raise XBenchError(f"{where}: field '{field_name}' must be a list")
    out = []
    for j, item in enumerate(items):
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, dict) and len(item) == 1:
            name, params = next(iter(item.items()))
            params = params or {}
            if not isinstance(params, dict):
                raise XBenchError(f"{where}: field '{field_name}[{j}].{name}' must map parameter names to values")
        else:
            raise XBenchError(f"{where}: field '{field_name}[{j}]' must be a name or {{name: {{params}}}}")
        try:
            name = registry.canonical(name)  # ``pkg.module:Class`` -> the class's name (xbench/registry.py)
            registry.get(name)(**params)
        except XBenchError as e:
            raise XBenchError(f"{where}: field '{field_name}[{j}]': {e}") from None
        out.append((name, params))
    return out


def load_suite(name_or_path: str) -> Suite:
    from .explainers import Explainer
    from .metrics import Metric

    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = suites_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            from .registry import unknown_name

            names = sorted(p.stem for p in suites_dir().glob("*.yaml"))
            raise XBenchError(unknown_name("suite", name_or_path, names))
    data = read_yaml(path, "suite file")
    if not isinstance(data, dict):
        raise XBenchError(f"{path}: field '(top level)' must be a mapping")
    allowed = {"name", "description", "metrics", "explainers", "n"}
    for k in data:
        if k not in allowed:
            raise XBenchError(f"{path}: field '{k}' is not a known field; valid: {', '.join(sorted(allowed))}")
    if "metrics" not in data:
        raise XBenchError(f"{path}: field 'metrics' is required")
    n = data.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n <= 0):
        raise XBenchError(f"{path}: field 'n' must be a positive integer")
    expl = data.get("explainers")
    return Suite(
        name=str(data.get("name", path.stem)),
        metrics=_entries(str(path), "metrics", data["metrics"], Metric.registry),
        explainers=None if expl in (None, "all") else _entries(str(path), "explainers", expl, Explainer.registry),
        n=n, description=str(data.get("description", "")), path=str(path),
    )
