"""File I/O: atomic writes (a reader sees the old file or the new one, never half of one), JSON with
numpy values, and YAML data files read with ``yaml.safe_load``."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

#: Test hook, off unless the environment sets it: ``XBENCH_FAULT_KILL_WRITE="<substring>:<n>"`` kills
#: the process with SIGKILL in the middle of its n-th atomic write to a path containing <substring>
#: (the temp file holds half the bytes, the target is untouched), so the kill-and-resume tests can
#: crash a real run at exact points.
_FAULT = os.environ.get("XBENCH_FAULT_KILL_WRITE")
_FAULT_COUNT = [0]


def _maybe_die(path: Path, f: Any) -> None:
    where, _, n = _FAULT.rpartition(":")
    if where not in str(path):
        return
    _FAULT_COUNT[0] += 1
    if _FAULT_COUNT[0] == int(n):
        import signal

        f.flush()
        size = f.tell()
        f.truncate(size // 2)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w") -> Path:
    """Write via ``write(fileobj)`` to a temp file in the same folder, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            write(f)
            if _FAULT:
                _maybe_die(path, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_yaml(path: str | os.PathLike, what: str = "file") -> Any:
    """A YAML data file (``yaml.safe_load``: data, never code); an unreadable or malformed file is
    one line naming the file and, for bad YAML, the line and column."""
    import yaml

    from xbench.core.errors import XBenchError

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
