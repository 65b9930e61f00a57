"""Model adapter: batched forward passes on token ids, with every pass counted.

``n_forward`` counts input rows passed through the model and ``n_backward`` rows
whose gradient was taken (a hook on the logits fires once per backward pass), so
cost is measured, not estimated from an explainer's parameters.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


class TextClassifier:
    """Wraps a ``transformers`` sequence classifier and its tokenizer."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 256) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.n_forward = 0
        self.n_backward = 0
        self.num_labels = int(model.config.num_labels)
        self.pad_id = int(tokenizer.pad_token_id)
        self.replacement_ids = {
            "mask": tokenizer.mask_token_id,
            "unk": tokenizer.unk_token_id,
            "pad": tokenizer.pad_token_id,
            "delete": tokenizer.pad_token_id,  # only used as an embedding baseline
        }
        for p in self.model.parameters():
            p.requires_grad_(False)

    def with_model(self, model: Any) -> "TextClassifier":
        """A new adapter (own counters) around another model with the same tokenizer."""
        return TextClassifier(model, self.tokenizer, self.batch_size)

    # -- counting -------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        return self.n_forward, self.n_backward

    def _counted(self, logits: torch.Tensor) -> torch.Tensor:
        rows = int(logits.shape[0])
        self.n_forward += rows
        if logits.requires_grad:
            def on_backward(grad: torch.Tensor) -> None:
                self.n_backward += rows

            logits.register_hook(on_backward)
        return logits

    # -- forward passes -------------------------------------------------------------------
    def logits(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None
               ) -> torch.Tensor:
        kw = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        out = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, **kw)
        return self._counted(out.logits)

    def attentions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Per-layer attention weights, each (batch, heads, L, L); counts one forward per row."""
        kw = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        with torch.no_grad():
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True, **kw)
        self._counted(out.logits)
        if not out.attentions or out.attentions[0] is None:
            raise RuntimeError("model returned no attention weights; load it with attn_implementation='eager'")
        return out.attentions

    # -- what gradient explainers differentiate: the word embeddings --------------------------
    def grad_inputs(self, ex: Any, policy: str) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        """(input embeddings, baseline embeddings of the replacement token at every non-special
        position, extra forward args) for one example, batch of one."""
        ids = torch.from_numpy(ex.input_ids)[None]
        repl = int(self.replacement_ids[policy])
        base_ids = torch.where(torch.from_numpy(ex.feature_ids >= 0)[None], repl, ids)
        with torch.no_grad():
            emb, base = self.embed(ids).requires_grad_(), self.embed(base_ids)
        tt = None if ex.token_type_ids is None else torch.from_numpy(ex.token_type_ids)[None]
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
        return (a.norm(dim=-1) if how == "l2" else a.sum(-1)).numpy()

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Word embeddings (the input of ``inputs_embeds``), without positions."""
        return self.model.get_input_embeddings()(input_ids)

    def probs(self, seqs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]]) -> np.ndarray:
        """Softmax outputs for variable-length ``(ids, attention, token_types)`` rows, one batch."""
        return self.outputs(seqs, "probability")

    def outputs(self, seqs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                kind: str = "logit") -> np.ndarray:
        """Logits or softmax probabilities for variable-length rows, one batch.

        Rows are right-padded with [PAD] and attention 0 to the longest in the batch.
        """
        n, L = len(seqs), max(len(s[0]) for s in seqs)
        ids = np.full((n, L), self.pad_id, dtype=np.int64)
        att = np.zeros((n, L), dtype=np.int64)
        tt = np.zeros((n, L), dtype=np.int64) if seqs[0][2] is not None else None
        for i, (a, m, t) in enumerate(seqs):
            ids[i, :len(a)] = a
            att[i, :len(a)] = m
            if tt is not None:
                tt[i, :len(a)] = t
        with torch.no_grad():
            logits = self.logits(torch.from_numpy(ids), torch.from_numpy(att),
                                 None if tt is None else torch.from_numpy(tt))
        logits = logits.float()
        return (torch.softmax(logits, -1) if kind == "probability" else logits).numpy()


class DenseClassifier:
    """Wraps a ``torch.nn.Module`` mapping float inputs (images ``(N, C, H, W)`` or rows ``(N, F)``)
    to logits, counting passes like :class:`TextClassifier`. Gradient explainers differentiate the
    input itself; their per-element scores are pooled into features (pixels: over channels) by sum."""

    replacement_ids: dict = {}

    def __init__(self, model: torch.nn.Module, num_labels: int, batch_size: int = 512) -> None:
        self.model = model.eval()
        self.num_labels = int(num_labels)
        self.batch_size = batch_size
        self.n_forward = 0
        self.n_backward = 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    def with_model(self, model: torch.nn.Module) -> "DenseClassifier":
        return DenseClassifier(model, self.num_labels, self.batch_size)

    counts = TextClassifier.counts
    _counted = TextClassifier._counted

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._counted(self.model(x))

    def outputs(self, rows: Sequence[tuple[Any, np.ndarray]], kind: str = "logit") -> np.ndarray:
        """Logits or probabilities for ``(example, keep)`` rows (see :meth:`DenseExample.perturb`)."""
        # build each example's inputs in one vectorised call (rows of one example are adjacent when
        # the engine or a captum batch submits them), not one row at a time
        parts, start = [], 0
        for end in range(1, len(rows) + 1):
            if end == len(rows) or rows[end][0] is not rows[start][0]:
                parts.append(rows[start][0].materialize(np.stack([k for _, k in rows[start:end]])))
                start = end
        return self.forward_array(np.concatenate(parts), kind)

    def forward_array(self, x: np.ndarray, kind: str = "logit") -> np.ndarray:
        out = []
        with torch.no_grad():
            for b in range(0, len(x), self.batch_size):
                lg = self.logits(torch.from_numpy(np.ascontiguousarray(x[b:b + self.batch_size]))).float()
                out.append((torch.softmax(lg, -1) if kind == "probability" else lg).numpy())
        return np.concatenate(out) if out else np.zeros((0, self.num_labels), np.float32)

    def probs(self, rows: Sequence[tuple[Any, np.ndarray]]) -> np.ndarray:
        return self.outputs(rows, "probability")

    def grad_inputs(self, ex: Any, policy: str) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        x = torch.from_numpy(ex.x)[None].clone().requires_grad_()
        return x, torch.from_numpy(ex.baseline)[None].clone(), ()

    def grad_forward(self, probability: bool):
        def f(x: torch.Tensor) -> torch.Tensor:
            logits = self.logits(x)
            return torch.softmax(logits, -1) if probability else logits

        return f

    @staticmethod
    def reduce_grad(attr: torch.Tensor, how: str = "sum") -> np.ndarray:
        """Per-element scores, flattened in C order (pooled into features by the explainer)."""
        a = attr.detach()[0].double().reshape(-1)
        return (a.abs() if how == "l2" else a).numpy()
