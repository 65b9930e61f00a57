"""``eraser``: a dataset in the ERASER benchmark's format (DeYoung et al. 2020), e.g. Movie Reviews.

An ERASER folder holds ``{split}.jsonl`` annotation files and a ``docs/`` folder::

    {"annotation_id": "negR_000.txt", "classification": "NEG", "query": "...",
     "evidences": [[{"docid": "negR_000.txt", "start_token": 63, "end_token": 67,
                     "start_sentence": 5, "end_sentence": 6, "text": "mind - fuck movie"}], ...]}

``docs/<docid>`` is one sentence per line, tokens separated by single spaces. A record's
``words`` are the document's tokens, read exactly as the official scorer reads them
(``rationale_benchmark/utils.py``: lines stripped, empty lines dropped, each line split on
``' '``, empty strings dropped), so word ``i`` is document token ``i`` and evidence token
indices (``end_token`` exclusive, counted over the whole document) index ``words`` directly.

Gold rationale (``rationale: union``): a word is in the rationale when any evidence of any
evidence group covers it. ERASER's evidence groups are alternative sufficient justifications;
the official scorer pools every group's evidence as the truth for its token and span scores,
and the union is that same pooled truth. ``rationale: none`` loads no rationale.

Long documents: ``max_words`` cuts each document (and its rationale) to its first words at load
time; with a word-level tokenizer and ``max_words = max_length - 2`` that is exactly the cut the
tokenizer would make. ``drop_empty_rationale`` then drops the test annotations whose evidence lies
wholly beyond the cut (their plausibility cannot be scored), counted in
``Splits.info["dropped_empty_rationale"]``; the training split keeps them. ``meta["n_tokens"]``
stays the whole document's length, for ERASER results (one score per document token).

The annotation files are sorted by class (every NEG review, then every POS one), so both
splits are shuffled with a generator seeded from the dataset seed (``shuffle: true``) before
``n_train``/``n_test`` keep the first n: the first n test examples (``xbench run --n``) then
hold both classes. Only single-document datasets are read (an annotation whose evidence
spans two documents, as in e-SNLI, is an error naming the file and line).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.data.base import DatasetSource, Record, Splits
from xbench.data.files import check_limit

RATIONALES = ("union", "none")


def read_document(path: Path) -> list[str]:
    """A document's tokens, flattened over its sentences, read as the official scorer reads them
    (``rationale_benchmark.utils.load_documents``: ``readlines()`` in text mode, so lines end at ``\n``,
    ``\r\n`` or ``\r`` only, never at the other characters ``str.splitlines`` splits on, such as
    ``\u2028``, ``\x85`` or ``\x0c``; each line stripped and split on single spaces)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        raise XBenchError(f"{path}: cannot read ERASER document ({e})") from None
    return [t for line in lines if line.strip() for t in line.strip().split(" ") if t]


class Eraser(DatasetSource):
    """An ERASER-format folder: documents as words, the union of evidence spans as the rationale."""

    name = "eraser"
    params = {
        "path": None,            # the folder with {split}.jsonl and docs/ (data roots apply)
        "train_split": "train",
        "test_split": "test",    # or "val"
        "label_names": None,     # default: the sorted classifications found, e.g. ["NEG", "POS"]
        "n_train": None,
        "n_test": None,
        "rationale": "union",    # union of all evidence groups (the official scorer's truth), or none
        "shuffle": True,         # seeded shuffle of both splits before n_train/n_test apply
        "max_words": None,       # cut documents (and rationales) to their first max_words words
        "drop_empty_rationale": False,  # drop test annotations whose (cut) rationale is empty
        # the annotation's ``query`` (BoolQ's question, FEVER's claim): "pair" reads it as the second
        # segment (as sentence pairs; choose what is explainable with the task's perturb_segments),
        # "none" leaves it out; "auto": pair where annotations ask different queries, none where every
        # annotation asks the same one (Movies: "What is the sentiment of this review?")
        "query": "auto",
    }

    def locate(self) -> Path:
        if not self.p["path"]:
            raise XBenchError("dataset source 'eraser': field 'dataset.params.path' is required")
        root = self.data_path(self.p["path"])
        for need in (f"{self.p['train_split']}.jsonl", f"{self.p['test_split']}.jsonl", "docs"):
            if not (root / need).exists():
                raise XBenchError(f"needs data: {root / need} not found (an ERASER folder holds "
                                  f"{{split}}.jsonl files and docs/)")
        return root

    def size(self) -> str:
        """Annotations per split, from the line counts (``≤``: test annotations may be dropped)."""
        try:
            root = self.locate()
            n = {s: sum(1 for ln in open(root / f"{self.p[f'{s}_split']}.jsonl", encoding="utf-8") if ln.strip())
                 for s in ("train", "test")}
        except (XBenchError, OSError):
            return super().size()
        return self.capped_size(n, self.p["drop_empty_rationale"])

    def load(self, seed: int) -> Splits:
        p = self.p
        if p["query"] not in ("auto", "pair", "none"):
            raise XBenchError(f"dataset source 'eraser': field 'dataset.params.query' must be one of auto, pair, "
                              f"none; got {p['query']!r}")
        if p["rationale"] not in RATIONALES:
            raise XBenchError(f"dataset source 'eraser': field 'dataset.params.rationale' must be one of "
                              f"{', '.join(RATIONALES)}; got {p['rationale']!r}")
        if p["label_names"] is not None and not (
                isinstance(p["label_names"], list) and p["label_names"]
                and all(isinstance(n, str) for n in p["label_names"])):
            raise XBenchError(f"dataset source 'eraser': field 'dataset.params.label_names' must be a list of "
                              f"class names; got {p['label_names']!r}")
        cut = p["max_words"]
        if cut is not None and (not isinstance(cut, int) or isinstance(cut, bool) or cut <= 0):
            raise XBenchError(f"dataset source 'eraser': field 'dataset.params.max_words' must be a positive "
                              f"integer; got {cut!r}")
        root = self.locate()
        docs: dict[str, list[str]] = {}
        stats: dict[str, Any] = {"evidence_text_mismatches": 0, "empty_evidence_spans": 0, "no_evidence": 0}
        raw = {split: self._read_split(root, p[f"{split}_split"], docs, stats) for split in ("train", "test")}
        names = p["label_names"] or sorted({c for rows in raw.values() for _, c, _, _, _ in rows})
        index = {n: i for i, n in enumerate(names)}
        queries = {q for rows in raw.values() for *_, q in rows}
        pair = p["query"] == "pair" or (p["query"] == "auto" and len(queries - {""}) > 1)
        out, info = {}, {"path": str(root), "rationale": p["rationale"], **stats,
                         "query": "pair (the query is the second segment)" if pair else
                         (f"none (every annotation asks {next(iter(queries))!r})" if len(queries) == 1 and p["query"] == "auto"
                          else "none")}
        for split, rows in raw.items():
            file = root / f"{p[f'{split}_split']}.jsonl"
            if p["shuffle"]:
                rows = [rows[i] for i in np_rng("eraser", seed, split).permutation(len(rows))]
            recs, empty = [], 0
            for ann_id, cls, docid, gold, query in rows:
                if cls not in index:
                    raise XBenchError(f"{file}: annotation {ann_id}: classification {cls!r} is not in "
                                      f"label_names {names}")
                words = docs[docid][:cut]
                rationale = None if p["rationale"] == "none" else gold[:cut]
                if split == "test" and p["drop_empty_rationale"] and rationale is not None and not any(rationale):
                    empty += 1
                    continue
                qwords = query.split() if pair else None
                if qwords is not None and rationale is not None:
                    rationale = rationale + [0] * len(qwords)  # the evidence is in the document
                # n_tokens: the whole document's length (ERASER results have one score per token)
                recs.append(Record(ann_id, words, index[cls], rationale, words_b=qwords,
                                   meta={"annotation_id": ann_id, "docid": docid, "n_tokens": len(docs[docid])}))
            n = check_limit(p[f"n_{split}"], f"n_{split}", self.task_path or "<task>")
            recs = recs if n is None else recs[:n]
            out[split] = recs
            if split == "test":
                info["dropped_empty_rationale"] = empty
            info[f"n_{split}"] = len(recs)
            if recs and p["rationale"] != "none":
                info[f"mean_rationale_fraction_{split}"] = round(
                    sum(sum(r.rationale) / max(1, len(r.words)) for r in recs) / len(recs), 4)
        return Splits(out["train"], out["test"], list(names), info)

    def _read_split(self, root: Path, split: str, docs: dict[str, list[str]], stats: dict[str, Any]
                    ) -> list[tuple[str, str, str, list[int], str]]:
        """(annotation_id, classification, docid, 0/1 union rationale, query) per annotation of one file."""
        file = root / f"{split}.jsonl"
        rows = []
        with open(file, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{file}:{lineno}"
                try:
                    ann = json.loads(line)
                except json.JSONDecodeError as e:
                    raise XBenchError(f"{where}: malformed JSON ({e.msg})") from None
                for key in ("annotation_id", "classification", "evidences"):
                    if key not in ann:
                        raise XBenchError(f"{where}: annotation has no field {key!r}")
                ann_id = str(ann["annotation_id"])
                evs = [ev for group in ann["evidences"] for ev in group]
                docids = sorted({str(ev["docid"]) for ev in evs}) or [str(d) for d in (ann.get("docids") or [])]
                docids = docids or [ann_id]  # ERASER names a single-document annotation's doc by its id
                if len(docids) != 1:
                    raise XBenchError(f"{where}: annotation {ann_id} refers to {len(docids)} documents "
                                      f"({', '.join(docids[:3])}); the eraser source reads single-document "
                                      f"datasets only")
                docid = docids[0]
                if docid not in docs:
                    doc_path = root / "docs" / docid
                    if not doc_path.is_file():
                        raise XBenchError(f"{where}: annotation {ann_id}: document {doc_path} not found")
                    docs[docid] = read_document(doc_path)
                words = docs[docid]
                gold = [0] * len(words)
                for ev in evs:
                    s, e = ev.get("start_token"), ev.get("end_token")
                    if not (isinstance(s, int) and isinstance(e, int) and 0 <= s <= e <= len(words)):
                        raise XBenchError(f"{where}: annotation {ann_id}: evidence span [{s}, {e}) is not "
                                          f"within document {docid} ({len(words)} tokens)")
                    gold[s:e] = [1] * (e - s)
                    stats["empty_evidence_spans"] += s == e  # a few in Movies' test split; they mark nothing
                    if "text" in ev and " ".join(words[s:e]) != ev["text"]:
                        stats["evidence_text_mismatches"] += 1
                stats["no_evidence"] += not evs
                rows.append((ann_id, str(ann["classification"]), docid, gold, str(ann.get("query") or "").strip()))
        if not rows:
            raise XBenchError(f"{file}: no annotations")
        return rows
