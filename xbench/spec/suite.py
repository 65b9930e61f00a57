"""Metric suites: which metrics (with which parameters), and optionally which explainers and how many
examples. The schema only; :func:`xbench.run.config.load_suite` checks the names against the
explainer and metric registries."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xbench.core.errors import XBenchError
from xbench.core.io import read_yaml
from xbench.spec.catalogue import suite_path

Entry = tuple[str, dict[str, Any]]


@dataclass
class Suite:
    """A metric suite: which metrics with which parameters, and optionally explainers and n."""

    name: str
    metrics: list[Entry]
    explainers: list[Entry] | None = None
    n: int | None = None
    description: str = ""
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def entries(where: str, field_name: str, items: Any) -> list[Entry]:
    """Entries are ``name`` or ``{name: {param: value}}``; the shape is checked here, the names by the
    caller."""
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
        out.append((name, params))
    return out


def read_suite(name_or_path: str) -> Suite:
    """A suite file (``suites/<name>.yaml`` or a path), schema-checked; names are not looked up."""
    path = suite_path(name_or_path)
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
    return Suite(name=str(data.get("name", path.stem)), metrics=entries(str(path), "metrics", data["metrics"]),
                 explainers=None if expl in (None, "all") else entries(str(path), "explainers", expl),
                 n=n, description=str(data.get("description", "")), path=str(path))
