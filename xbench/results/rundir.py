"""The run directory: its layout, its manifest (one reader, one error policy) and its atomic writes.

Every module that reads or writes a run goes through :class:`RunDir`::

    manifest.json                        config, seeds, versions, runtime, task/model info, timings
    scores/<task>/<explainer>.csv        per-example scores of one unit (its presence marks the unit done)
    explanations/<task>/<explainer>.npz  the attributions that were scored
    curves/<task>/<explainer>.npz        per-example deletion/insertion curves
    examples/<task>.json                 what the report's example viewer shows
    scores.csv                           all per-example scores
    leaderboard.json|md|csv|tex          aggregated tables; summary.json per-task summaries
    agreement.json|md                    pairwise agreement of explainers per task
    plots/, report.html                  figures and the HTML report

Errors are one line naming the directory or file: a path that is not a run directory, a manifest
that is not JSON or has no ``config``, a file the caller needs that is missing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from xbench.core.errors import XBenchError
from xbench.core.io import atomic_write, atomic_write_json, atomic_write_text

UNIT_KINDS = {"scores": "csv", "explanations": "npz", "curves": "npz"}


class RunDir:
    """A run directory (module docstring). Cheap to make; reads nothing until asked."""

    MANIFEST = "manifest.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._manifest: dict[str, Any] | None = None

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    # -- the manifest --------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.path / self.MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self, required: bool = True) -> dict[str, Any]:
        """The manifest as written (read once and kept). Missing: an error naming the directory, or
        ``{}`` when not ``required``; not JSON or not an object: an error naming the file."""
        if self._manifest is None:
            if not self.manifest_path.is_file():
                if not required:
                    return {}
                raise XBenchError(f"{self.path}: not a run directory (no {self.MANIFEST})")
            try:
                data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                raise XBenchError(f"{self.manifest_path}: not valid JSON ({e})") from None
            if not isinstance(data, dict):
                raise XBenchError(f"{self.manifest_path}: not a run manifest (a JSON object)")
            self._manifest = data
        return self._manifest

    def config(self) -> dict[str, Any]:
        """The manifest's ``config`` (the resolved run configuration)."""
        m = self.manifest()
        cfg = m.get("config")
        if not isinstance(cfg, dict):
            raise XBenchError(f"{self.manifest_path}: field 'config' is missing")
        return cfg

    def task_info(self, task: str) -> dict[str, Any]:
        """The manifest's entry for one task (``{}`` when it has none)."""
        return self.manifest(required=False).get("tasks", {}).get(task, {})

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Write the manifest atomically (and keep it as the one read)."""
        atomic_write_json(self.manifest_path, manifest)
        self._manifest = manifest

    # -- files ---------------------------------------------------------------------------------
    def unit(self, kind: str, task: str, explainer: str) -> Path:
        """A unit's file: ``<kind>/<task>/<explainer>.<ext>`` for kind scores, explanations or curves."""
        return self.path / kind / task / f"{explainer}.{UNIT_KINDS[kind]}"

    def examples(self, task: str) -> Path:
        return self.path / "examples" / f"{task}.json"

    def require(self, name: str, what: str = "run directory") -> Path:
        """``path/name``, or an error saying the directory is not a (complete) run."""
        p = self.path / name
        if not p.exists():
            raise XBenchError(f"{self.path}: not a {what} (no {name})")
        return p

    def write(self, name: str, write: Callable[[Any], None], mode: str = "w") -> Path:
        return atomic_write(self.path / name, write, mode)

    def write_text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.path / name, text)

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.path / name, obj)

    def remove_partial_writes(self) -> None:
        """Delete temp files an interrupted atomic write left behind (never renamed into place)."""
        for tmp in self.path.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
