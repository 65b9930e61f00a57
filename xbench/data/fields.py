"""Field mapping: dataset rows (dicts) into word-level :class:`~xbench.data.Record` s.

A task file names the fields in ``dataset.params``::

    text: review                  # or [premise, hypothesis] for a sentence pair
    label: label                  # raw value -> class index (see below)
    label_names: [neg, pos]       # optional class names, in class-index order
    label_map: {NEG: 0, POS: 1}   # optional raw value -> class index (or class name)
    id: doc_id                    # optional; default "<split>-<row number>"
    rationale: evidence           # optional gold rationale field ...
    rationale_format: chars       # ... as a 0/1 ``mask`` over words, word ``spans``, or ``chars``

A text value is a string (split into words on whitespace, as ``str.split()``) or a list of
words. Rationale forms, all giving the same 0/1 vector over the record's words:

- ``mask``: 0/1 per word; for a pair, a list of two masks (one per segment) or one mask
  over both segments' words;
- ``spans``: half-open ``[start, end)`` word spans; for a pair, a list of two span lists
  (word indices within each segment) or one list over both segments' words;
- ``chars``: half-open ``[start, end)`` character offsets into the text string; a word is in
  the rationale if its character span overlaps one. Word character spans are computed once
  from the original string (``re.finditer(r"\\S+")``), never by re-tokenising words. For a
  pair, a list of two offset lists, one per segment.

Every validation error is one line that names the file (and line), the example and the field.
"""
from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from xbench.core.errors import XBenchError
from xbench.data.base import Record

#: dataset.params shared by every source that maps fields (defaults)
FIELD_PARAMS: dict[str, Any] = {
    "text": None,
    "label": "label",
    "label_names": None,
    "label_map": None,
    "id": None,
    "rationale": None,
    "rationale_format": "mask",
}
RATIONALE_FORMATS = ("mask", "spans", "chars")
_WORD = re.compile(r"\S+")


def plain(v: Any) -> Any:
    """numpy arrays and scalars (from pandas/pyarrow) as plain Python values, recursively."""
    if isinstance(v, np.ndarray):
        return [plain(x) for x in v.tolist()] if v.dtype == object else v.tolist()
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def key_str(raw: Any) -> str:
    """A raw label as a lookup key: integral numbers (1, 1.0, True) as '1', else str()."""
    if isinstance(raw, bool):
        return str(int(raw))
    if isinstance(raw, numbers.Number) and float(raw).is_integer():
        return str(int(raw))
    return str(raw)


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character span of each whitespace-separated word of ``text`` (same words as ``str.split()``)."""
    return [m.span() for m in _WORD.finditer(text)]


def chars_to_mask(spans: Sequence[tuple[int, int]], offsets: Iterable[tuple[int, int]]) -> list[int]:
    """1 for each word whose character span [ws, we) overlaps an offset span [s, e)."""
    mask = [0] * len(spans)
    for s, e in offsets:
        for i, (ws, we) in enumerate(spans):
            if ws < e and s < we:
                mask[i] = 1
    return mask


@dataclass
class Segment:
    """One text segment: its words and, when it came as a string, the string and word spans."""

    words: list[str]
    text: str | None = None
    spans: list[tuple[int, int]] | None = None


@dataclass
class Where:
    """Where a row came from, for error messages: ``file[, line N]: example ID``."""

    origin: str
    #: the row's place in the file, e.g. "line 3" (JSONL) or "row 3" (CSV)
    at: str | None = None
    example: str | None = None

    def __call__(self, fld: str | None, msg: str) -> XBenchError:
        at = self.origin + (f", {self.at}" if self.at else "")
        ex = f": example {self.example}" if self.example is not None else ""
        f = f": field {fld!r}" if fld else ""
        return XBenchError(f"{at}{ex}{f}: {msg}")


def _param_error(task: str, key: str, msg: str) -> XBenchError:
    return XBenchError(f"{task}: field 'dataset.params.{key}' {msg}")


@dataclass
class FieldMap:
    """Validated field-mapping parameters; :meth:`record` turns one row into a Record."""

    text: tuple[str, ...]
    label: str
    label_names: list[str] | None = None
    label_map: dict[str, int] | None = None
    id: str | None = None
    rationale: str | None = None
    rationale_format: str = "mask"
    #: class names implied by a label_map whose values are indices (its keys, by index)
    implied_names: list[str] | None = field(default=None, repr=False)

    @property
    def pair(self) -> bool:
        return len(self.text) == 2

    @classmethod
    def from_params(cls, p: dict[str, Any], task: str = "<task>") -> "FieldMap":
        """Check the mapping params (``task`` names the task file in errors)."""
        text = p.get("text")
        if isinstance(text, str) and text:
            texts: tuple[str, ...] = (text,)
        elif isinstance(text, list) and len(text) == 2 and all(isinstance(t, str) and t for t in text):
            texts = tuple(text)
        elif text is None:
            raise _param_error(task, "text", "is required (a field name, or a list of two for a sentence pair)")
        else:
            raise _param_error(task, "text", f"must be a field name or a list of two field names; got {text!r}")
        for key in ("label", "id", "rationale"):
            v = p.get(key)
            if v is not None and not (isinstance(v, str) and v):
                raise _param_error(task, key, f"must be a field name; got {v!r}")
        if not p.get("label"):
            raise _param_error(task, "label", "is required (the label's field name)")
        fmt = p.get("rationale_format") or "mask"
        if fmt not in RATIONALE_FORMATS:
            raise _param_error(task, "rationale_format", f"must be one of {', '.join(RATIONALE_FORMATS)}; got {fmt!r}")
        names = p.get("label_names")
        if names is not None:
            if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
                raise _param_error(task, "label_names", f"must be a non-empty list of class names; got {names!r}")
            if len(set(names)) != len(names):
                raise _param_error(task, "label_names", f"has a duplicate name: {names!r}")
        lmap, implied = None, None
        raw_map = p.get("label_map")
        if raw_map is not None:
            if not isinstance(raw_map, dict) or not raw_map:
                raise _param_error(task, "label_map", f"must be a mapping raw value -> class index; got {raw_map!r}")
            lmap = {}
            for k, v in raw_map.items():
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise _param_error(task, "label_map", f"value for {k!r} must be a class index or name; got {v!r}")
                if isinstance(v, str):
                    if names is None:
                        raise _param_error(task, "label_map", f"maps {k!r} to the class name {v!r}; "
                                                              f"set dataset.params.label_names too")
                    if v not in names:
                        raise _param_error(task, "label_map", f"maps {k!r} to {v!r}, which is not in label_names "
                                                              f"({', '.join(names)})")
                    v = names.index(v)
                if v < 0 or (names is not None and v >= len(names)):
                    raise _param_error(task, "label_map", f"maps {k!r} to class {v}, out of range")
                lmap[key_str(k)] = int(v)
            if names is None:
                idx = sorted(set(lmap.values()))
                if idx != list(range(len(idx))):
                    raise _param_error(task, "label_map", f"class indices must be 0..K-1; got {idx}")
                implied = [next(k for k, v in lmap.items() if v == i) for i in idx]
        return cls(texts, p["label"], names, lmap, p.get("id"), p.get("rationale"), fmt, implied)

    # -- rows -> records ------------------------------------------------------------------
    def record(self, row: dict[str, Any], where: Where, default_id: str) -> Record:
        """One row as a Record (``where`` locates the row in errors)."""
        row = plain(row)
        rid = default_id
        if self.id is not None:
            v = self._get(row, self.id, where)
            if is_missing(v):
                raise where(self.id, "the example id is missing")
            rid = str(v)
        where.example = rid
        segs = [self.segment(self._get(row, f, where), f, where) for f in self.text]
        label = self.label_index(self._get(row, self.label, where), where)
        rationale = None
        if self.rationale is not None:
            rationale = self.rationale_mask(self._get(row, self.rationale, where), segs, where)
        return make_record(rid, segs, label, rationale, {})

    @staticmethod
    def _get(row: dict[str, Any], name: str, where: Where) -> Any:
        if name not in row:
            raise where(name, f"is missing (the row has fields: {', '.join(map(str, row))})")
        return row[name]

    @staticmethod
    def segment(v: Any, name: str, where: Where) -> Segment:
        """A text value: a string (whitespace words, with character spans) or a list of words."""
        if isinstance(v, str):
            spans = word_spans(v)
            seg = Segment([v[s:e] for s, e in spans], v, spans)
        elif isinstance(v, list) and all(isinstance(w, str) for w in v):
            seg = Segment(list(v))
        else:
            raise where(name, f"must be a string or a list of words; got {type(v).__name__}")
        if not any(w.strip() for w in seg.words):
            raise where(name, "is empty")
        return seg

    def label_index(self, raw: Any, where: Where, names: list[str] | None = None) -> int:
        """Class index of a raw label: through ``label_map``, a class name, or an integer."""
        names = names or self.label_names
        if is_missing(raw):
            raise where(self.label, "the label is missing")
        if self.label_map is not None:
            k = key_str(raw)
            if k not in self.label_map:
                raise where(self.label, f"label {raw!r} is not a key of label_map "
                                        f"({', '.join(map(str, self.label_map))})")
            return self.label_map[k]
        if isinstance(raw, str) and names and raw in names:
            return names.index(raw)
        if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
            raw = int(raw)
        if isinstance(raw, numbers.Number) and float(raw).is_integer():
            i = int(raw)
            if i < 0 or (names is not None and i >= len(names)):
                n = f" (classes 0..{len(names) - 1})" if names else ""
                raise where(self.label, f"label {raw!r} is out of range{n}; an unlabelled split?")
            return i
        if names:
            raise where(self.label, f"label {raw!r} is not one of label_names ({', '.join(names)}); "
                                    f"set dataset.params.label_map")
        raise where(self.label, f"label {raw!r} is not a class index; set dataset.params.label_names "
                                f"or label_map")

    def rationale_mask(self, v: Any, segs: list[Segment], where: Where) -> list[int] | None:
        """The rationale as 0/1 over all words (both segments), or None if the value is empty."""
        return rationale_to_mask(v, self.rationale_format, segs, where, self.rationale or "rationale")


def _json_cell(v: Any, name: str, where: Where) -> Any:
    """CSV cells hold lists as JSON text."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError:
            raise where(name, f"is not a JSON list: {v[:40]!r}") from None
    return v


def _is_int(x: Any) -> bool:
    return isinstance(x, numbers.Integral) or (isinstance(x, float) and x.is_integer())


def _pairs(v: Any, name: str, where: Where, what: str) -> list[tuple[int, int]]:
    if not isinstance(v, list):
        raise where(name, f"{what} must be a list of [start, end) pairs; got {type(v).__name__}")
    out = []
    for s in v:
        if not (isinstance(s, list) and len(s) == 2 and all(_is_int(x) and not isinstance(x, bool) for x in s)):
            raise where(name, f"{what} entry {s!r} is not a [start, end) pair of integers")
        out.append((int(s[0]), int(s[1])))
    return out


def _per_segment(v: Any, depth: int) -> bool:
    """Whether a pair's rationale comes as one list per segment (a list of two lists whose
    entries are themselves lists when ``depth`` is 3)."""
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, list) for x in v)):
        return False
    if depth == 2:
        return all(not x or not isinstance(x[0], list) for x in v)
    return all(all(isinstance(y, list) for y in x) for x in v)


def rationale_to_mask(v: Any, fmt: str, segs: list[Segment], where: Where, name: str) -> list[int] | None:
    """Convert a rationale in ``mask`` / ``spans`` / ``chars`` form to 0/1 over all words."""
    if is_missing(v):
        return None
    v = _json_cell(v, name, where)
    n = [len(s.words) for s in segs]
    total = sum(n)
    pair = len(segs) == 2
    if fmt == "mask":
        parts = v if pair and _per_segment(v, 2) else [v]
        if not all(isinstance(p, list) for p in parts):
            raise where(name, f"mask must be a list of 0/1; got {type(v).__name__}")
        if len(parts) == 2 and [len(p) for p in parts] != n:
            raise where(name, f"mask has {[len(p) for p in parts]} entries for segments of {n} words")
        flat = [x for p in parts for x in p]
        if len(flat) != total:
            raise where(name, f"mask has {len(flat)} entries for {total} words")
        bad = [x for x in flat if not (isinstance(x, bool) or (_is_int(x) and x in (0, 1)))]
        if bad:
            raise where(name, f"mask entries must be 0 or 1; got {bad[0]!r}")
        return [int(x) for x in flat]
    if fmt == "spans":
        if pair and _per_segment(v, 3):
            spans = [(s + off, e + off, k) for k, (part, off) in enumerate(zip(v, (0, n[0])))
                     for s, e in _pairs(part, name, where, f"segment {k} spans")]
        else:
            spans = [(s, e, None) for s, e in _pairs(v, name, where, "spans")]
        mask = [0] * total
        for s, e, k in spans:
            lo, hi = (0, total) if k is None else ((0, n[0]) if k == 0 else (n[0], total))
            if not lo <= s <= e <= hi:
                raise where(name, f"word span [{s - lo}, {e - lo}) is out of range for {hi - lo} words")
            mask[s:e] = [1] * (e - s)
        return mask
    if fmt == "chars":
        if pair and not _per_segment(v, 3):
            raise where(name, "chars rationale of a pair must be a list of two offset lists, one per segment")
        parts = v if pair else [v]
        mask: list[int] = []
        for seg, part in zip(segs, parts):
            if seg.text is None:
                raise where(name, "chars rationale needs the text as a string, not a list of words")
            offs = _pairs(part, name, where, "character offsets")
            for s, e in offs:
                if not 0 <= s <= e <= len(seg.text):
                    raise where(name, f"character span [{s}, {e}) is out of range for a text of "
                                      f"{len(seg.text)} characters")
            mask += chars_to_mask(seg.spans or [], offs)
        return mask
    raise where(name, f"unknown rationale_format {fmt!r}; valid: {', '.join(RATIONALE_FORMATS)}")


def make_record(rid: str, segs: list[Segment], label: int, rationale: list[int] | None,
                meta: dict[str, Any]) -> Record:
    """A Record from segments, dropping empty (whitespace-only) words together with their
    rationale entries: a tokenizer gives such a word no token, and it would look truncated."""
    words_per_seg = []
    kept_rat: list[int] = []
    i = 0
    for seg in segs:
        ws = []
        for w in seg.words:
            if w.strip():
                ws.append(w)
                if rationale is not None:
                    kept_rat.append(int(rationale[i]))
            i += 1
        words_per_seg.append(ws)
    return Record(rid, words_per_seg[0], int(label), kept_rat if rationale is not None else None,
                  words_per_seg[1] if len(segs) == 2 else None, meta)


def resolve_label_names(fmap: FieldMap, records: list[Record], hint: list[str] | None = None) -> list[str]:
    """Class names: ``label_names``, else those implied by ``label_map``, else ``hint`` (e.g. a
    ``datasets`` ClassLabel), else '0'..'K-1' from the largest label seen."""
    names = fmap.label_names or fmap.implied_names or hint
    if names:
        return list(names)
    k = max((r.label for r in records), default=1) + 1
    return [str(i) for i in range(max(k, 2))]
