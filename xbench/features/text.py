"""The text modality: token ids, and how tokens group into features (tokens or dataset words).

Inputs are never decoded and re-tokenised: a removed feature's tokens are replaced in the id
sequence according to the task's replacement policy (:class:`TextRemoval`), and special tokens
(``feature_ids == -1``) are never touched:

- ``mask``: ids become ``[MASK]``;
- ``unk``: ids become ``[UNK]``;
- ``pad``: ids become ``[PAD]`` and their attention-mask entries 0;
- ``delete``: the tokens are dropped and the sequence closes up (positions shift).

The model is a ``transformers`` sequence classifier behind :class:`TextClassifier`: batched forward
passes on token ids (right-padded per batch), gradients in word-embedding space.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from xbench.core.errors import XBenchError
from xbench.data.base import Record
from xbench.features.protocol import Modality, PassCounter

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime
    from xbench.spec.task import TaskSpec

Row = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]
POLICIES = ("mask", "pad", "unk", "delete")


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
    truth: None = None

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

    def row(self) -> Row:
        """The unperturbed input as one model-input row."""
        return self.input_ids, self.ones, self.token_type_ids

    def digest(self) -> bytes:
        """Bytes that identify the example's input (for task fingerprints)."""
        return self.input_ids.tobytes() + self.feature_ids.tobytes()


def materialize(ex: TextExample, keep: np.ndarray, policy: str, replacement_id: int | None) -> list[Row]:
    """Perturbed ``(ids, attention, token_types)`` rows for each row of ``keep`` (m, F) bool."""
    keep = np.asarray(keep, dtype=bool).reshape(-1, ex.n_features)
    cols, fids = ex.movable
    kept = keep[:, fids]  # (m, movable tokens): is each movable token's feature kept?
    tt = ex.token_type_ids
    if policy == "delete":
        pos_keep = np.ones((len(keep), len(ex.input_ids)), dtype=bool)
        pos_keep[:, cols] = kept
        return [(ex.input_ids[k], np.ones(int(k.sum()), dtype=np.int64), None if tt is None else tt[k])
                for k in pos_keep]
    if policy not in POLICIES:
        raise ValueError(f"unknown replacement policy {policy!r}; valid: {', '.join(POLICIES)}")
    ids = np.repeat(ex.input_ids[None, :], len(keep), axis=0)
    ids[:, cols] = np.where(kept, ex.input_ids[cols], replacement_id)
    if policy == "pad":
        att = np.ones_like(ids)
        att[:, cols] = kept
        return [(ids[i], att[i], tt) for i in range(len(ids))]
    ones = ex.ones
    return [(row, ones, tt) for row in ids]


def replacement_ids(tokenizer: Any) -> dict[str, int | None]:
    """The token id each policy writes (``delete`` writes none; its gradient baseline is [PAD])."""
    return {"mask": tokenizer.mask_token_id, "unk": tokenizer.unk_token_id, "pad": tokenizer.pad_token_id,
            "delete": tokenizer.pad_token_id}


class TextRemoval:
    """A text task's removal policy in token-id space (module docstring); dedup keys are the token ids
    (and token types, if any). Attention needs no place in them: it is 1 everywhere except where the
    pad policy put [PAD], which the ids show, as examples are never padded."""

    def __init__(self, policy: str, tokenizer: Any) -> None:
        self.name = policy
        ids = replacement_ids(tokenizer)
        #: the id a removed token becomes, and whose embedding is a gradient method's baseline at every
        #: removable position ([PAD] for ``delete``, which writes none)
        self.token_id = None if ids.get(policy) is None else int(ids[policy])
        self.token = tokenizer.convert_ids_to_tokens(self.token_id) if self.token_id is not None else None

    def apply(self, ex: TextExample, keep: np.ndarray) -> tuple[list[Row], list[bytes]]:
        rows = materialize(ex, keep, self.name, self.token_id)
        return rows, [r[0].tobytes() if r[2] is None else r[0].tobytes() + b"|" + r[2].tobytes() for r in rows]

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"replacement": self.name, "space": "token ids", "special_tokens": "fixed"}
        if self.name == "delete":
            d["note"] = "tokens dropped, positions shift"
        else:
            d.update(token=self.token, token_id=self.token_id)
        return d


class TextClassifier(PassCounter):
    """A ``transformers`` sequence classifier and its tokenizer behind the adapter protocol.

    ``n_forward`` counts input rows passed through the model and ``n_backward`` rows whose gradient
    was taken (a hook on the logits fires once per backward pass), so cost is measured, not
    estimated from an explainer's parameters. The model sits on the runtime's device (and dtype);
    outputs come back as float32 numpy arrays on the CPU."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 256, runtime: "Runtime | None" = None) -> None:
        from xbench.core.device import Runtime

        self.runtime = runtime or Runtime()
        self.model = self.runtime.place(model).eval()
        self.tokenizer = tokenizer
        self.batch_size = self.runtime.batch_size or batch_size
        self.n_forward = 0
        self.n_backward = 0
        self.num_labels = int(model.config.num_labels)
        self.pad_id = int(tokenizer.pad_token_id)
        self.replacement_ids = replacement_ids(tokenizer)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.runtime.torch_device

    @property
    def provides(self) -> frozenset[str]:
        """Gradients always; attention weights when the model computes them explicitly (``eager``
        attention: SDPA and flash kernels return none)."""
        impl = getattr(getattr(self.model, "config", None), "_attn_implementation", None)
        return frozenset({"gradients"} | ({"attention"} if impl in (None, "eager") else set()))

    def with_model(self, model: Any) -> "TextClassifier":
        """A new adapter (own counters) around another model with the same tokenizer."""
        return TextClassifier(model, self.tokenizer, self.batch_size, self.runtime)

    # -- forward passes -------------------------------------------------------------------
    def logits(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
               n_real: int | None = None) -> torch.Tensor:
        """The model's logits; the first ``n_real`` rows (default all) are counted (:meth:`counted`)."""
        kw = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        out = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, **kw)
        return self.counted(out.logits, n_real, attention_mask)

    def attentions(self, ex: TextExample) -> tuple[torch.Tensor, ...]:
        """Per-layer attention weights of one example, each (1, heads, L, L); counts one forward."""
        dev = self.device
        ids = torch.from_numpy(ex.input_ids)[None].to(dev)
        kw = {} if ex.token_type_ids is None else {"token_type_ids": torch.from_numpy(ex.token_type_ids)[None].to(dev)}
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True, **kw)
        self.counted(out.logits, attention=torch.ones_like(ids))
        if not out.attentions or out.attentions[0] is None:
            raise RuntimeError("model returned no attention weights; load it with attn_implementation='eager'")
        return tuple(a.cpu() for a in out.attentions)

    # -- what gradient explainers differentiate: the word embeddings --------------------------
    def grad_inputs(self, ex: TextExample, removal: TextRemoval) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """(input embeddings, baseline embeddings of the replacement token at every non-special
        position, extra forward args) for one example, batch of one."""
        dev = self.device
        ids = torch.from_numpy(ex.input_ids)[None].to(dev)
        base_ids = torch.where(torch.from_numpy(ex.feature_ids >= 0)[None].to(dev), int(removal.token_id), ids)
        with torch.no_grad():
            emb, base = self.embed(ids).requires_grad_(), self.embed(base_ids)
        tt = None if ex.token_type_ids is None else torch.from_numpy(ex.token_type_ids)[None].to(dev)
        return emb, base, (torch.ones_like(ids), tt)

    def grad_forward(self, probability: bool):
        def f(embeds: torch.Tensor, att: torch.Tensor, tt: Any = None) -> torch.Tensor:
            logits = self.logits(inputs_embeds=embeds, attention_mask=att, token_type_ids=tt)
            return torch.softmax(logits, -1) if probability else logits

        return f

    @staticmethod
    def reduce_grad(attr: torch.Tensor, how: str = "sum") -> np.ndarray:
        """Per-token scores from a per-dimension embedding attribution: sum (keeps completeness) or l2."""
        a = attr.detach()[0].double()
        return (a.norm(dim=-1) if how == "l2" else a.sum(-1)).cpu().numpy()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings (the input of ``inputs_embeds``), without positions."""
        return self.model.get_input_embeddings()(input_ids.to(self.device))

    def probs(self, seqs: Sequence[Row]) -> np.ndarray:
        """Softmax outputs for variable-length ``(ids, attention, token_types)`` rows, one batch."""
        return self.outputs(seqs, "probability")

    def outputs(self, seqs: Sequence[Row], kind: str = "logit", min_rows: int = 0) -> np.ndarray:
        """Logits or softmax probabilities for variable-length rows, one batch.

        Rows are right-padded with [PAD] and attention 0 to the longest in the batch. With
        ``min_rows``, a smaller batch is filled up to that many rows with copies of its first row
        (their outputs are dropped and not counted): CPU kernels take another path for small
        batches, so a row's output would otherwise depend on how many rows it was evaluated with.
        """
        seqs, n = self.fill(seqs, min_rows)
        m, L = len(seqs), max(len(s[0]) for s in seqs)
        ids = np.full((m, L), self.pad_id, dtype=np.int64)
        att = np.zeros((m, L), dtype=np.int64)
        tt = np.zeros((m, L), dtype=np.int64) if seqs[0][2] is not None else None
        for i, (a, mk, t) in enumerate(seqs):
            ids[i, :len(a)] = a
            att[i, :len(a)] = mk
            if tt is not None:
                tt[i, :len(a)] = t
        dev = self.device
        with torch.no_grad():
            logits = self.logits(torch.from_numpy(ids).to(dev), torch.from_numpy(att).to(dev),
                                 None if tt is None else torch.from_numpy(tt).to(dev), n_real=n)[:n].float()
        return (torch.softmax(logits, -1) if kind == "probability" else logits).cpu().numpy()


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


class TextModality(Modality):
    """Text classified by a ``transformers`` model: features are tokens or dataset words."""

    name = "text"
    replacements = POLICIES
    provides = frozenset({"gradients", "attention"})
    noise = "embeddings"
    token_edits = True

    def removal(self, splits: Any, tokenizer: Any) -> TextRemoval:
        return TextRemoval(self.spec.replacement, tokenizer)

    def encode(self, records: list, splits: Any, tokenizer: Any, removal: Any) -> list[TextExample]:
        return encode_records(records, tokenizer, self.spec)

    def adapter(self, model: Any, tokenizer: Any, splits: Any, runtime: "Runtime") -> "TextClassifier":
        return TextClassifier(model, tokenizer, runtime=runtime)

    def pooling(self) -> str:
        return self.spec.pooling

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]:
        c: dict[str, Any] = {}
        if scores == "tokens" and self.spec.granularity == "words":
            c["pooling"] = self.spec.pooling
        if space == "input":
            c["embedding_reduction"] = reduce
        return c
