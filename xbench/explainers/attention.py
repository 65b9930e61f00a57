"""Attention explainers (not in captum, so written here; a few lines each)."""
from __future__ import annotations

import torch

from xbench.explainers.base import Explainer


class _AttentionExplainer(Explainer):
    family = "attention"
    needs = frozenset({"attention"})
    modalities = frozenset({"text", "lm"})
    scores = "tokens"
    space = "model"

    def _attentions(self, inputs):
        if inputs.attentions is None:
            raise RuntimeError(f"explainer {self.name}: the model exposes no attention weights")
        return [a[0].double() for a in inputs.attentions()]


class LastLayerAttention(_AttentionExplainer):
    """Raw attention: the last layer's row for the query position (a classifier's [CLS], a causal LM's
    last prompt token: the one predicting the answer), averaged over heads."""

    name = "attention"

    def attribute(self, inputs, seed):
        return self._attentions(inputs)[-1].mean(0)[inputs.query].numpy()


class AttentionRollout(_AttentionExplainer):
    """Attention rollout (Abnar & Zuidema 2020): R = prod_l (0.5 mean_h A_l + 0.5 I), rows renormalised;
    the query position's row of R (a causal LM's attention is lower-triangular, so is R)."""

    name = "attention_rollout"

    def attribute(self, inputs, seed):
        rollout = None
        for a in self._attentions(inputs):
            a = 0.5 * a.mean(0) + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
            a = a / a.sum(-1, keepdim=True)
            rollout = a if rollout is None else a @ rollout
        return rollout[inputs.query].numpy()
