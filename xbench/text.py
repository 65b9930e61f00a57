"""Text examples: token ids, and how tokens group into features (tokens or dataset words)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from .data import Record
from .errors import XBenchError

if TYPE_CHECKING:  # pragma: no cover
    from .spec import TaskSpec


@dataclass
class TextExample:
    """One encoded input and how its tokens group into features.

    ``feature_ids[j]`` is the feature that token ``j`` belongs to, or -1 for a token
    that is never perturbed (special tokens). Features are numbered 0..F-1 in
    reading order. ``rationale`` is a 0/1 vector over the F features, or None.
    """

    id: str
    input_ids: np.ndarray
    feature_ids: np.ndarray
    label: int
    features: list[str]
    rationale: np.ndarray | None = None
    token_type_ids: np.ndarray | None = None
    truncated: bool = False
    #: feature -> index of its word in the record's words (``words + words_b``), for exports
    word_index: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @cached_property
    def movable(self) -> tuple[np.ndarray, np.ndarray]:
        """(token positions that belong to a feature, their feature ids)."""
        cols = np.flatnonzero(self.feature_ids >= 0)
        return cols, self.feature_ids[cols]

    @cached_property
    def ones(self) -> np.ndarray:
        """An all-ones attention mask of the example's length (shared, read-only)."""
        a = np.ones(len(self.input_ids), dtype=np.int64)
        a.flags.writeable = False
        return a

    def perturb(self, keep: np.ndarray, policy: str, replacement_id: int) -> tuple[list, list[bytes]]:
        """Perturbed model inputs for each row of ``keep`` (m, F) and their dedup keys."""
        from .perturb import materialize

        rows = materialize(self, keep, policy, replacement_id)
        return rows, [r[0].tobytes() if r[2] is None else r[0].tobytes() + b"|" + r[2].tobytes() for r in rows]

    def digest(self) -> bytes:
        """Bytes that identify the example's input (for task fingerprints)."""
        return self.input_ids.tobytes() + self.feature_ids.tobytes()


def encode_records(records: list[Record], tokenizer: Any, spec: "TaskSpec") -> list[TextExample]:
    """Tokenise word records and map words to features through ``word_ids()``.

    Rationales follow the words through the tokenizer, so truncation cuts the
    rationale exactly where it cuts the input. For a pair, words are numbered over both
    segments (``sequence_ids()`` tells them apart), and tokens of a segment not in
    ``spec.perturb_segments`` are fixed (feature -1), like special tokens.
    """
    out = []
    allowed = set(spec.perturb_segments) if spec.perturb_segments else {0, 1}
    for r in records:
        words = r.all_words
        if r.words_b is None:
            enc = tokenizer(r.words, is_split_into_words=True, truncation=True, max_length=spec.max_length)
        else:
            enc = tokenizer(r.words, r.words_b, is_split_into_words=True, truncation=True,
                            max_length=spec.max_length)
        seq, wids = enc.sequence_ids(), enc.word_ids()
        offset = (0, len(r.words))
        # global word index of each token (None for special tokens and fixed segments)
        gw = [None if w is None or s not in allowed else offset[s] + w for w, s in zip(wids, seq)]
        ids = np.asarray(enc["input_ids"], dtype=np.int64)
        tt = np.asarray(enc["token_type_ids"], dtype=np.int64) if "token_type_ids" in enc else None
        if spec.granularity == "tokens":
            feat = np.full(len(ids), -1, dtype=np.int64)
            src_word = []
            for j, w in enumerate(gw):
                if w is not None:
                    feat[j] = len(src_word)
                    src_word.append(w)
            names = tokenizer.convert_ids_to_tokens([int(ids[j]) for j in range(len(ids)) if feat[j] >= 0])
        else:  # words
            kept = sorted({w for w in gw if w is not None})
            remap = {w: i for i, w in enumerate(kept)}
            feat = np.array([-1 if w is None else remap[w] for w in gw], dtype=np.int64)
            src_word = kept
            names = [words[w] for w in kept]
        rationale = None
        if r.rationale is not None:
            if len(r.rationale) != len(words):
                raise XBenchError(f"example {r.id}: rationale has {len(r.rationale)} entries "
                                  f"for {len(words)} words")
            rationale = np.array([int(bool(r.rationale[w])) for w in src_word], dtype=np.int8)
        present = {offset[s] + w for w, s in zip(wids, seq) if w is not None}
        truncated = len(present) < len(words)
        out.append(TextExample(r.id, ids, feat, int(r.label), list(names), rationale, tt, truncated,
                               np.asarray(src_word, dtype=np.int64), dict(r.meta)))
    return out
