"""Quick, bounded checks of whether the Hugging Face Hub (or another host) can be reached.

Sources that may download (``hf-dataset``, ``hub``) call these from ``unavailable()`` before
anything is loaded, so that a machine without network gets a one-line "needs network: ..."
at once instead of a library's retry loop. Nothing here ever waits more than ``timeout``
seconds: name resolution, which ``socket.create_connection``'s timeout does not bound, runs in
a daemon thread that is abandoned when it overruns.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

HUB_HOST = "huggingface.co"
_memo: dict[tuple[str, int], bool] = {}
_lock = threading.Lock()


def _truthy(v: str | None) -> bool:
    return (v or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_offline_flag() -> bool:
    """Whether the user asked for offline mode (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE``), as the environment or the already-imported libraries see it."""
    if any(_truthy(os.environ.get(k)) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        import huggingface_hub.constants as hc

        return bool(hc.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - huggingface_hub is a dependency of transformers
        return False


def reachable(host: str = HUB_HOST, port: int = 443, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds (memoised per
    process: one probe per host, however many sources ask)."""
    key = (host, port)
    with _lock:
        if key in _memo:
            return _memo[key]
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    ok = bool(result and result[0])
    with _lock:
        _memo[key] = ok
    return ok


def hub_reachable() -> bool:
    """False when offline mode is set or huggingface.co:443 does not answer within ~2 s."""
    return not hub_offline_flag() and reachable(HUB_HOST)


def url_host(value: str) -> str | None:
    """The host of an http(s)/hf URL, or None for a local path."""
    u = urlparse(str(value))
    if u.scheme in ("http", "https"):
        return u.hostname
    if u.scheme == "hf":
        return HUB_HOST
    return None


def datasets_cache() -> Path:
    """The ``datasets`` cache folder, without importing ``datasets`` (seconds) unless it already is."""
    dc = sys.modules.get("datasets.config")
    if dc is not None:
        return Path(dc.HF_DATASETS_CACHE)
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "datasets"


def hub_dataset_cached(repo_id: str) -> bool:
    """Whether a Hub dataset left anything in the local caches (the ``datasets`` cache of
    prepared Arrow files, or the hub download cache)."""
    import huggingface_hub.constants as hc

    prepared = datasets_cache() / repo_id.replace("/", "___")
    downloaded = Path(hc.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}"
    return prepared.is_dir() or downloaded.is_dir()


def hub_model_cached(repo_id: str, revision: str | None = None) -> bool:
    """Whether a Hub model's ``config.json`` is in the local hub cache (at ``revision``)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # an invalid repo id or revision: not cached
        return False
    return isinstance(hit, str)


@contextmanager
def forced_offline() -> Iterator[None]:
    """Make ``huggingface_hub`` and ``datasets`` use their caches only, for the duration.

    Written by hand because neither ``datasets.load_dataset`` nor the hub client takes an
    "offline" argument: both read a module constant set from ``HF_HUB_OFFLINE`` at import,
    which this sets (and restores) so a cached dataset or model loads without a network try.
    """
    import datasets.config as dc
    import huggingface_hub.constants as hc

    saved = (hc.HF_HUB_OFFLINE, dc.HF_HUB_OFFLINE)
    hc.HF_HUB_OFFLINE, dc.HF_HUB_OFFLINE = True, True
    try:
        yield
    finally:
        hc.HF_HUB_OFFLINE, dc.HF_HUB_OFFLINE = saved
