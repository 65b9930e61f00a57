"""Attention explainers (not in captum, so written here; a few lines each)."""
from __future__ import annotations

import torch

from . import Explainer


class _AttentionExplainer(Explainer):
    family = "attention"
    needs = frozenset({"attention"})
    modalities = frozenset({"text"})
    scores = "tokens"

    def _attentions(self, task, ex):
        ids = torch.from_numpy(ex.input_ids)[None]
        tt = None if ex.token_type_ids is None else torch.from_numpy(ex.token_type_ids)[None]
        return [a[0].double() for a in task.model.attentions(ids, torch.ones_like(ids), tt)]


class LastLayerAttention(_AttentionExplainer):
    """Raw attention: the last layer's row for the first ([CLS]) token, averaged over heads."""

    name = "attention"

    def attribute(self, task, ex, target, seed):
        return self._attentions(task, ex)[-1].mean(0)[0].numpy()


class AttentionRollout(_AttentionExplainer):
    """Attention rollout (Abnar & Zuidema 2020): R = prod_l (0.5 mean_h A_l + 0.5 I), rows renormalised;
    the [CLS] row of R."""

    name = "attention_rollout"

    def attribute(self, task, ex, target, seed):
        rollout = None
        for a in self._attentions(task, ex):
            a = 0.5 * a.mean(0) + 0.5 * torch.eye(a.shape[-1], dtype=a.dtype)
            a = a / a.sum(-1, keepdim=True)
            rollout = a if rollout is None else a @ rollout
        return rollout[0].numpy()
