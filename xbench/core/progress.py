"""Progress bars for the long phases (training, explaining, the shared engine pass, scoring,
statistics, plots): counts and rates on stderr through ``tqdm``, and nothing at all when progress is
off (``--no-progress``, ``progress=False`` in the API, or stderr not a terminal).

One switch for the process, set by whoever starts a run (:func:`enabled`), so a phase deep in the
stack needs no flag passed down to it.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")
_ON = [False]


def enabled(on: bool | None = None) -> bool:
    """Whether bars are shown; with an argument, switch them on or off (only on a terminal)."""
    if on is not None:
        _ON[0] = bool(on) and sys.stderr.isatty()
    return _ON[0]


@contextlib.contextmanager
def switched(on: bool) -> Iterator[None]:
    """Progress on or off for the block, restored after."""
    before = _ON[0]
    enabled(on)
    try:
        yield
    finally:
        _ON[0] = before


def bar(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """``items`` with a bar ``desc: n/total [elapsed, rate unit/s]`` when progress is on."""
    if not _ON[0]:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, leave=False, dynamic_ncols=True)


class Counter:
    """A bar advanced by hand (``update(n)``), for work counted in rows rather than iterations."""

    def __init__(self, desc: str, total: int, unit: str = "row") -> None:
        self._bar: Any = None
        if _ON[0] and total:
            from tqdm.auto import tqdm

            self._bar = tqdm(desc=desc, total=total, unit=unit, unit_scale=True, leave=False, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def note(self, text: str) -> None:
        """A short status after the counts (e.g. rates, retries)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Counter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
