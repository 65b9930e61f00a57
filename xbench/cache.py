"""Where xbench keeps trained models and attributions (never committed)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_dir(*sub: str) -> Path:
    """``$XBENCH_CACHE`` or ``~/.cache/xbench``, joined with ``sub``."""
    root = Path(os.environ.get("XBENCH_CACHE") or Path.home() / ".cache" / "xbench")
    return root.joinpath(*sub)


def content_key(obj: Any, n: int = 16) -> str:
    """A short stable hash of a JSON-serialisable object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]
