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
