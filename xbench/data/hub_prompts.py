"""``hub-prompts``: prompts with a known answer (and a foil), through ``datasets.load_dataset``, for
generative (``modality: lm``) tasks.

Where the data is and how it loads is :class:`xbench.data.hub.HFDataset`'s (``path``: a Hub dataset id,
a local folder or file, or a packaged builder with ``data_files``; ``name``, ``revision``, ``split``;
a Hub id offline is "needs network" unless cached). Each row of the split becomes one record:

- ``words``: the ``prompt`` column split on whitespace; ``label`` 0 (the lm modality sets labels: 0
  when the explained answer is the dataset's);
- ``meta['answer']``: the ``answer`` column, surrounding whitespace stripped. Datasets written for
  direct concatenation lead their targets with a space (``" Paris"``); the lm modality adds the
  space a plain prompt needs itself (and none after a chat template);
- ``meta['foil']``: the ``foil`` column likewise (set ``foil: null`` for a dataset without one);
- gold rationale, with ``subject`` (``subject: null`` for none): 1 for every prompt word that
  overlaps the subject's characters: its first occurrence that starts a word (its words with any
  whitespace between them), else its first occurrence anywhere (e.g. inside ``"Apple's"``). A row
  whose subject is not in its prompt gets no rationale (counted in the info);
- ``meta['subject']`` and the ``keep`` columns as they are; the id is the ``id`` column's value or
  ``{split}-{row}``.

The defaults read ``NeelNanda/counterfact-tracing`` (CounterFact of Meng et al. 2022, ROME, as
flattened for causal tracing: ``prompt``, ``subject``, ``target_true``, ``target_false``,
``relation``, ``relation_prefix``, ``relation_suffix``, ``relation_id``, ``target_true_id``,
``target_false_id``; one ``train`` split of 21,919 facts). ``n_test`` keeps the first n rows.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, ClassVar

from xbench.core.errors import XBenchError
from xbench.data.base import Record, Splits
from xbench.data.fields import Where, _param_error, chars_to_mask, is_missing, plain, word_spans
from xbench.data.files import check_limit
from xbench.data.hub import HFDataset

#: the parameters naming columns, and whether ``null`` may turn them off
COLUMNS = {"prompt": False, "answer": False, "foil": True, "subject": True, "id": True}
LABEL_NAMES = ["answer", "other"]


def subject_span(prompt: str, subject: str) -> tuple[int, int] | None:
    """Character span of ``subject`` (surrounding whitespace ignored) in ``prompt``: its first occurrence
    that starts a word, with any whitespace between its words, else its first occurrence anywhere."""
    words = subject.split()
    if not words:
        return None
    m = re.search(r"(?<!\S)" + r"\s+".join(map(re.escape, words)), prompt)
    if m is not None:
        return m.span()
    s = " ".join(words)
    i = prompt.find(s)
    return None if i < 0 else (i, i + len(s))


class HubPrompts(HFDataset):
    """Prompts with a known answer, foil and subject, through ``datasets.load_dataset``."""

    name = "hub-prompts"
    offline = False
    params = {"path": None, "name": None, "revision": None, "split": "train", "data_files": None,
              "n_test": None, "prompt": "prompt", "answer": "target_true", "foil": "target_false",
              "subject": "subject", "id": None, "keep": []}
    param_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "foil": (str, type(None)), "subject": (str, type(None)), "id": (str, type(None))}

    def load(self, seed: int) -> Splits:
        task = self._task
        if not isinstance(self.p["path"], str) or not self.p["path"]:
            raise _param_error(task, "path", "is required (a Hub dataset id, a local folder or file, or a "
                                             "builder such as parquet with data_files)")
        limit = check_limit(self.p["n_test"], "n_test", task)
        cols = self._columns()
        ds = self._load_split(self.p["split"])
        self._check_columns(list(ds.column_names), cols)
        origin = f"{self.p['path']}[{self.p['split']}]"
        stats: Counter = Counter()
        out: list[Record] = []
        seen: set[str] = set()
        for i, row in enumerate(ds):
            if limit is not None and len(out) >= limit:
                break
            rec = self._record(plain(row), i, cols, Where(origin, f"row {i}"), stats)
            if rec.id in seen:
                raise Where(origin, f"row {i}", rec.id)(None, "the example id repeats an earlier row's")
            seen.add(rec.id)
            out.append(rec)
        if not out:
            raise XBenchError(f"{task}: dataset {self.p['path']!r} split {self.p['split']!r}: no examples")
        info: dict[str, Any] = {"path": self.p["path"], "name": self.p["name"], "revision": self.p["revision"],
                                "split": self.p["split"], "columns": {k: v for k, v in cols.items() if v}}
        if cols["subject"]:
            info["with_rationale"] = stats["with_rationale"]
            info["subject_not_found"] = stats["subject_not_found"]
        return Splits([], out, list(LABEL_NAMES), info)

    def _columns(self) -> dict[str, str | None]:
        task, out = self._task, {}
        for k, nullable in COLUMNS.items():
            v = self.p[k]
            if v is None and not nullable:
                raise _param_error(task, k, "must name a column of the dataset")
            if v is not None and (not isinstance(v, str) or not v):
                raise _param_error(task, k, f"must name a column of the dataset{' or be null' if nullable else ''}; "
                                            f"got {v!r}")
            out[k] = v
        keep = self.p["keep"]
        if not isinstance(keep, (list, tuple)) or not all(isinstance(c, str) and c for c in keep):
            raise _param_error(task, "keep", f"must be a list of column names; got {keep!r}")
        return out

    def _check_columns(self, columns: list[str], cols: dict[str, str | None]) -> None:
        for k, c in [*cols.items(), *(("keep", c) for c in self.p["keep"])]:
            if c is not None and c not in columns:
                off = " (or null for none)" if COLUMNS.get(k) else ""
                raise XBenchError(f"{self._task}: field 'dataset.params.{k}': dataset {self.p['path']!r} split "
                                  f"{self.p['split']!r} has no column {c!r}{off}; columns: {', '.join(columns)}")

    def _record(self, row: dict[str, Any], i: int, cols: dict[str, str | None], where: Where,
                stats: Counter) -> Record:
        split = self.p["split"]
        rid = f"{split}-{i}"
        if cols["id"]:
            if is_missing(row[cols["id"]]):
                raise where(cols["id"], "the example id is empty")
            rid = str(row[cols["id"]])
        where.example = rid

        def text(k: str) -> str:
            v = row[cols[k]]
            if not isinstance(v, str) or not v.strip():
                raise where(cols[k], f"the {k} must be a non-empty string; got {v!r}")
            return v

        prompt = text("prompt")
        spans = word_spans(prompt)
        meta: dict[str, Any] = {"answer": text("answer").strip()}
        if cols["foil"]:
            meta["foil"] = text("foil").strip()
        rationale = None
        if cols["subject"]:
            subject = text("subject")
            meta["subject"] = subject.strip()
            span = subject_span(prompt, subject)
            if span is None:
                stats["subject_not_found"] += 1
            else:
                rationale = chars_to_mask(spans, [span])
                stats["with_rationale"] += 1
        for c in self.p["keep"]:
            meta[c] = row[c]
        return Record(rid, [prompt[s:e] for s, e in spans], 0, rationale, meta=meta)
