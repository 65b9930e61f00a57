"""``path``: local JSONL / JSON / CSV / TSV / Parquet files, mapped to records by field names.

Example ``dataset`` block::

    dataset:
      source: path
      params:
        test: data/movies-test.jsonl     # resolved beside the task file, the CWD, $XBENCH_DATA
        train: data/movies-train.jsonl   # optional with a pretrained model
        text: review
        label: label
        label_names: [NEG, POS]
        rationale: evidence_chars
        rationale_format: chars
        n_test: 200

The format comes from the extension (``.jsonl``/``.ndjson``, ``.json``, ``.csv``, ``.tsv``,
``.parquet``) or the ``format`` param. CSV/TSV cells are read as text; list-valued cells
(rationales, word lists) hold JSON. Rows are taken in file order; ``n_train``/``n_test``
keep the first n.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from xbench.core.errors import XBenchError
from xbench.data.base import DatasetSource, Record, Splits
from xbench.data.fields import FIELD_PARAMS, FieldMap, Where, _param_error, resolve_label_names

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet")
_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
        ".parquet": "parquet"}


def file_format(path: Path, given: str | None, task: str) -> str:
    if given is not None:
        if given not in FORMATS:
            raise _param_error(task, "format", f"must be one of {', '.join(FORMATS)}; got {given!r}")
        return given
    fmt = _EXT.get(path.suffix.lower())
    if fmt is None:
        raise XBenchError(f"{path}: cannot tell the file format from the extension {path.suffix!r}; "
                          f"set dataset.params.format to one of {', '.join(FORMATS)}")
    return fmt


def read_rows(path: Path, fmt: str) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """Rows of a data file as ``(place, row)``, ``place`` being e.g. 'line 3' for messages. A file
    that is not UTF-8 text is one line naming it and the first bad byte."""
    try:
        yield from _read_rows(path, fmt)
    except UnicodeDecodeError as e:
        raise XBenchError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}: {e.reason}); "
                          f"save it as UTF-8") from None


def _read_rows(path: Path, fmt: str) -> Iterator[tuple[str | None, dict[str, Any]]]:
    if fmt == "json":
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # JSON lines under a .json name
        if isinstance(data, list):
            for i, row in enumerate(data):
                if not isinstance(row, dict):
                    raise XBenchError(f"{path}: item {i}: must be a JSON object, got {type(row).__name__}")
                yield f"item {i}", row
            return
        fmt = "jsonl"
    if fmt == "jsonl":
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise XBenchError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise XBenchError(f"{path}, line {n}: must be a JSON object, got {type(row).__name__}")
                yield f"line {n}", row
        return
    import pandas as pd

    if fmt in ("csv", "tsv"):
        try:
            df = pd.read_csv(path, sep="," if fmt == "csv" else "\t", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
            raise XBenchError(f"{path}: cannot read as {fmt.upper()} ({str(e).splitlines()[0]})") from None
    else:
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a malformed file
            raise XBenchError(f"{path}: cannot read as Parquet ({str(e).splitlines()[0]})") from None
    for i, row in enumerate(df.to_dict("records")):
        yield f"row {i + 1}", row


def rows_to_records(rows: Iterator[tuple[str | None, dict[str, Any]]], fmap: FieldMap, origin: str,
                    split: str, limit: int | None) -> list[Record]:
    """Map rows to records (the first ``limit``), rejecting a repeated example id."""
    out: list[Record] = []
    seen: dict[str, str | None] = {}
    for i, (place, row) in enumerate(rows):
        if limit is not None and len(out) >= limit:
            break
        where = Where(origin, place)
        rec = fmap.record(row, where, f"{split}-{i}")
        if rec.id in seen:
            raise where(fmap.id, f"example id {rec.id!r} repeats the one at {seen[rec.id]}")
        seen[rec.id] = place
        out.append(rec)
    return out


def check_limit(value: Any, key: str, task: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _param_error(task, key, f"must be a positive integer; got {value!r}")
    return value


def check_labels(records: list[Record], names: list[str], origin: str) -> None:
    for r in records:
        if not 0 <= r.label < len(names):
            raise XBenchError(f"{origin}: example {r.id}: label {r.label} is out of range for the "
                              f"{len(names)} classes ({', '.join(names)})")


class PathSource(DatasetSource):
    """Local data files (JSONL, JSON, CSV, TSV, Parquet), mapped by field names."""

    name = "path"
    params = {"train": None, "test": None, "format": None, "n_train": None, "n_test": None, **FIELD_PARAMS}

    def load(self, seed: int) -> Splits:
        task = self.task_path or "<task>"
        if not self.p["test"]:
            raise _param_error(task, "test", "is required (the test data file)")
        fmap = FieldMap.from_params(self.p, task)
        splits: dict[str, list[Record]] = {}
        files: dict[str, str] = {}
        for split in ("train", "test"):
            value = self.p[split]
            limit = check_limit(self.p[f"n_{split}"], f"n_{split}", task)
            if value is None:
                splits[split] = []
                continue
            if not isinstance(value, str):
                raise _param_error(task, split, f"must be a file path; got {value!r}")
            path = self.data_path(value)
            if path.is_dir():
                raise XBenchError(f"{path}: is a folder; dataset.params.{split} must name a file")
            fmt = file_format(path, self.p["format"], task)
            splits[split] = rows_to_records(read_rows(path, fmt), fmap, str(path), split, limit)
            files[split] = str(path)
        if not splits["test"]:
            raise XBenchError(f"{files['test']}: no examples")
        names = resolve_label_names(fmap, splits["train"] + splits["test"])
        for split in ("train", "test"):
            check_labels(splits[split], names, files.get(split, task))
        return Splits(splits["train"], splits["test"], names,
                      {"files": files, "pair": fmap.pair, "rationale_format": fmap.rationale_format
                       if fmap.rationale else None})
