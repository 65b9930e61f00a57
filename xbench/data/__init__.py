"""Dataset sources: each turns a task's ``dataset:`` block into labelled word records."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..registry import Registered, Registry


@dataclass
class Record:
    """One labelled text as a list of words, with an optional 0/1 rationale over the words."""

    id: str
    words: list[str]
    label: int
    rationale: list[int] | None = None

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass
class Splits:
    train: list[Record]
    test: list[Record]
    label_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)


class DatasetSource(Registered):
    """A named way to obtain :class:`Splits` from a task's ``dataset.params``."""

    registry: ClassVar[Registry["DatasetSource"]] = Registry("dataset source")
    #: whether it needs nothing beyond xbench and its dependencies (offline default)
    offline: ClassVar[bool] = True

    def load(self, seed: int) -> Splits:  # pragma: no cover - interface
        raise NotImplementedError


from . import synthetic  # noqa: E402,F401  (registers the built-in sources)
