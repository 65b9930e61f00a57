"""Shared fixtures; the analytic test model and data live in helpers.py."""
from __future__ import annotations

import pytest

from helpers import LINEAR_TASK
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task


@pytest.fixture
def linear_spec():
    return parse_task(dict(LINEAR_TASK), "linear.yaml")


@pytest.fixture
def linear_task(linear_spec):
    return load_task(linear_spec)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets the session's private cache, never the user's ~/.cache/xbench."""
    monkeypatch.setenv("XBENCH_CACHE", str(_session_cache(tmp_path_factory)))


_CACHE: dict[str, str] = {}


def _session_cache(factory) -> str:
    if "dir" not in _CACHE:
        _CACHE["dir"] = str(factory.mktemp("xbench-cache"))
    return _CACHE["dir"]
