"""Where xbench keeps trained models and attributions (never committed)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from xbench.core.io import atomic_write_text


def cache_dir(*sub: str) -> Path:
    """``$XBENCH_CACHE`` or ``~/.cache/xbench``, joined with ``sub``."""
    root = Path(os.environ.get("XBENCH_CACHE") or Path.home() / ".cache" / "xbench")
    return root.joinpath(*sub)


def content_key(obj: Any, n: int = 16) -> str:
    """A short stable hash of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar(path: Path) -> Path:
    return Path(f"{path}.sha256")


def write_sidecar(path: Path) -> None:
    """Record the sha256 of a cache file beside it (``<file>.sha256``, written atomically after it)."""
    atomic_write_text(sidecar(path), file_sha256(path) + "\n")


def verify_sidecar(path: Path) -> bool:
    """True when ``path`` and its sidecar exist and the file's sha256 is the recorded one: a cache
    entry that was truncated, corrupted or never finished is not used."""
    s = sidecar(path)
    try:
        return path.exists() and s.exists() and s.read_text().strip() == file_sha256(path)
    except OSError:
        return False


def model_dir_ok(path: Path, weights: str = "model.safetensors") -> bool:
    """True when a cached model folder is whole: ``meta.json`` records ``weights_sha256`` and the
    weights file has that hash. A folder that fails (truncated, corrupted, from an older xbench)
    is retrained, never used."""
    try:
        meta = json.loads((Path(path) / "meta.json").read_text())
        return meta.get("weights_sha256") == file_sha256(Path(path) / weights)
    except (OSError, ValueError, AttributeError):
        return False
