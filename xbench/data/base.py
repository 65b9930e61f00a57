"""What dataset sources return (word records, array records, splits) and their base class: each source
turns a task's ``dataset:`` block into labelled records."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from xbench.core.errors import XBenchError
from xbench.core.registry import Registered, Registry


@dataclass
class Record:
    """One labelled text as a list of words (two lists for a sentence pair), with an optional
    0/1 rationale over the words (over ``words + words_b`` for a pair)."""

    id: str
    words: list[str]
    label: int
    rationale: list[int] | None = None
    #: the second segment of a sentence pair (e.g. the hypothesis of an NLI example)
    words_b: list[str] | None = None
    #: provenance kept with the example (e.g. ERASER ``annotation_id`` and ``docid``)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @property
    def all_words(self) -> list[str]:
        return self.words + (self.words_b or [])


@dataclass
class ArrayRecord:
    """One labelled array: an image ``(C, H, W)`` or a tabular row ``(F,)``.

    ``mask`` is the gold rationale: 0/1 over pixels ``(H, W)`` or over columns ``(F,)``.
    ``truth`` is a known true attribution over features (e.g. a linear generator's
    w * (x - baseline)), or None. When ``Splits.info['truth_weights']`` holds a linear
    generator's coefficients w, the tabular modality sets each example's truth to
    w * (x - baseline) with the example's own baseline (which the replacement policy fixes).
    """

    id: str
    x: np.ndarray
    label: int
    mask: np.ndarray | None = None
    truth: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class MultimodalRecord:
    """One labelled image-and-text pair (a question about an image, a caption to match).

    ``image`` is a ``(C, H, W)`` float array, or a path to an image file (read when the task encodes
    it; relative paths resolve as data paths do). ``mask`` is the gold region, 0/1 over the image's
    pixels ``(H, W)`` (all zero: nothing in the image decides), ``rationale`` the gold words, 0/1 over
    ``words``; either may be None."""

    id: str
    image: Any
    words: list[str]
    label: int
    mask: np.ndarray | None = None
    rationale: list[int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


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
    #: the task file that asked for this source; relative data paths resolve against its folder
    task_path: str | None = None

    def load(self, seed: int) -> Splits:  # pragma: no cover - interface
        raise NotImplementedError

    def size(self) -> str:
        """A short description of the split sizes, for ``xbench list tasks``."""
        tr, te = self.p.get("n_train"), self.p.get("n_test")
        if tr is None and te is None:
            return "?"
        return f"{'?' if tr is None else tr}/{'?' if te is None else te}"

    def unavailable(self) -> str | None:
        """Why this source cannot load here (e.g. "needs network: dataset X"), or None. Must be quick
        and must never wait on the network: the CLI calls it before loading. By default: the one-line
        error of :meth:`locate`, if it raises."""
        try:
            self.locate()
        except XBenchError as e:
            return str(e)
        return None

    def locate(self) -> Any:
        """Find the source's files (raising ``XBenchError('needs data: ...')`` if absent); None if it
        needs none."""
        return None

    def capped_size(self, counts: dict[str, int], may_drop_test: bool = False) -> str:
        """'train/test' from per-split counts, capped by ``n_train``/``n_test``; '≤' marks a test count
        that filtering may lower."""
        n = {s: v if self.p.get(f"n_{s}") is None else min(v, self.p[f"n_{s}"]) for s, v in counts.items()}
        return f"{n['train']}/{'≤' if may_drop_test else ''}{n['test']}"

    def data_path(self, value: str) -> Path:
        """Resolve a data path from ``dataset.params``: ``~`` and ``$VARS`` expanded; a relative path is
        looked up beside the task file, then in the working directory, then in each folder of
        ``XBENCH_DATA`` (``os.pathsep``-separated; default ``../shared/data`` beside the repository).
        A path that is nowhere raises ``XBenchError('needs data: ...')``."""
        return resolve_data_path(value, self.task_path)


def data_roots(task_path: str | None = None) -> list[Path]:
    roots = []
    if task_path:
        roots.append(Path(task_path).resolve().parent)
    roots.append(Path.cwd())
    env = os.environ.get("XBENCH_DATA")
    if env:
        roots += [Path(p) for p in env.split(os.pathsep) if p]
    repo = Path(__file__).resolve().parents[2]
    roots.append(repo.parent / "shared" / "data")
    return roots


def resolve_data_path(value: str, task_path: str | None = None) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(str(value))))
    candidates = [p] if p.is_absolute() else [r / p for r in data_roots(task_path)]
    for c in candidates:
        if c.exists():
            return c
    where = f"{task_path}: " if task_path else ""
    raise XBenchError(f"{where}needs data: {value} not found (looked in "
                      f"{', '.join(str(c.parent) for c in candidates)}; set XBENCH_DATA to its folder)")

