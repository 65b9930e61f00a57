"""Where the catalogue lives on disk: task specs in ``tasks/`` and metric suites in ``suites/``.

Both folders sit at the repository root (beside the package), or in the working directory.
``XBENCH_TASKS`` and ``XBENCH_SUITES`` point elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

from xbench.core.errors import XBenchError
from xbench.core.registry import unknown_name

ROOT = Path(__file__).resolve().parents[2]


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
    return _folder("XBENCH_SUITES", "suites")


def task_files(folder: Path | None = None) -> list[Path]:
    """The task YAML files of the catalogue folder, in name order."""
    return sorted((folder or tasks_dir()).glob("*.y*ml"))


def suite_path(name_or_path: str) -> Path:
    """A suite file: the path itself when it is an existing YAML file, else ``suites/<name>.yaml``; an
    unknown name is one line listing the suites there."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    path = suites_dir() / f"{name_or_path}.yaml"
    if not path.exists():
        names = sorted(p.stem for p in suites_dir().glob("*.yaml"))
        raise XBenchError(unknown_name("suite", name_or_path, names))
    return path
