"""Gradient explainers, all through captum, in word-embedding space."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..seeding import isolated_global_rng
from . import Explainer


class _EmbeddingExplainer(Explainer):
    family = "gradient"
    needs = frozenset({"gradients"})
    scores = "tokens"

    def _inputs(self, task, ex) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        model = task.model
        ids = torch.from_numpy(ex.input_ids)[None]
        repl = int(model.replacement_ids[task.spec.replacement])
        base_ids = torch.where(torch.from_numpy(ex.feature_ids >= 0)[None], repl, ids)
        with torch.no_grad():
            emb, base = model.embed(ids).requires_grad_(), model.embed(base_ids)
        att = torch.ones_like(ids)
        tt = None if ex.token_type_ids is None else torch.from_numpy(ex.token_type_ids)[None]
        return emb, base, (att, tt)

    def _forward(self, task):
        model, prob = task.model, task.spec.explained_output == "probability"

        def f(embeds: torch.Tensor, att: torch.Tensor, tt: Any = None) -> torch.Tensor:
            logits = model.logits(inputs_embeds=embeds, attention_mask=att, token_type_ids=tt)
            return torch.softmax(logits, -1) if prob else logits

        return f

    def _reduce(self, attr: torch.Tensor) -> np.ndarray:
        a = attr.detach()[0].double()
        return (a.norm(dim=-1) if self.p.get("reduce") == "l2" else a.sum(-1)).numpy()

    def attribute(self, task, ex, target, seed):
        emb, base, extra = self._inputs(task, ex)
        with isolated_global_rng(seed):
            return self._reduce(self._captum(task, emb, base, extra, target))

    def _captum(self, task, emb, base, extra, target) -> torch.Tensor:
        raise NotImplementedError


class Saliency(_EmbeddingExplainer):
    """Saliency (Simonyan et al. 2014): |d p_y / d e|, summed over the embedding (captum ``Saliency``)."""

    name = "saliency"
    params = {"abs": True, "reduce": "sum"}

    def _captum(self, task, emb, base, extra, target):
        from captum.attr import Saliency as CSaliency

        return CSaliency(self._forward(task)).attribute(emb, target=target, abs=self.p["abs"],
                                                       additional_forward_args=extra)


class InputXGradient(_EmbeddingExplainer):
    """Input x gradient (Shrikumar et al. 2016): e * d p_y / d e, summed over the embedding."""

    name = "input_x_gradient"
    params = {"reduce": "sum"}

    def _captum(self, task, emb, base, extra, target):
        from captum.attr import InputXGradient as CIxG

        return CIxG(self._forward(task)).attribute(emb, target=target, additional_forward_args=extra)


class IntegratedGradients(_EmbeddingExplainer):
    """Integrated Gradients (Sundararajan et al. 2017) from the replacement-token baseline (captum)."""

    name = "integrated_gradients"
    params = {"n_steps": 32, "method": "gausslegendre", "internal_batch_size": 64, "reduce": "sum"}

    def _captum(self, task, emb, base, extra, target):
        from captum.attr import IntegratedGradients as CIG

        return CIG(self._forward(task)).attribute(
            emb, baselines=base, target=target, additional_forward_args=extra, n_steps=self.p["n_steps"],
            method=self.p["method"], internal_batch_size=self.p["internal_batch_size"])


def _stdev(emb: torch.Tensor, noise_level: float) -> float:
    """Noise scale relative to the example's embedding range (Smilkov et al. 2017)."""
    return float(noise_level * (emb.detach().max() - emb.detach().min()))


class SmoothGrad(_EmbeddingExplainer):
    """SmoothGrad (Smilkov et al. 2017): saliency averaged over Gaussian-noised embeddings (captum
    ``NoiseTunnel``); sigma = noise_level * (max - min) of the example's embeddings."""

    name = "smoothgrad"
    stochastic = True
    params = {"nt_samples": 16, "noise_level": 0.1, "nt_samples_batch_size": 16, "reduce": "sum"}

    def _captum(self, task, emb, base, extra, target):
        from captum.attr import NoiseTunnel
        from captum.attr import Saliency as CSaliency

        return NoiseTunnel(CSaliency(self._forward(task))).attribute(
            emb, nt_type="smoothgrad", nt_samples=self.p["nt_samples"], stdevs=_stdev(emb, self.p["noise_level"]),
            nt_samples_batch_size=self.p["nt_samples_batch_size"], target=target,
            additional_forward_args=extra)


class GradientShap(_EmbeddingExplainer):
    """GradientSHAP (Lundberg & Lee 2017; captum ``GradientShap``): expected gradients x (e - baseline)
    over random points on the path from the replacement-token baseline, with Gaussian noise."""

    name = "gradient_shap"
    stochastic = True
    params = {"n_samples": 16, "noise_level": 0.0, "reduce": "sum"}

    def _captum(self, task, emb, base, extra, target):
        from captum.attr import GradientShap as CGradientShap

        return CGradientShap(self._forward(task)).attribute(
            emb, baselines=base, n_samples=self.p["n_samples"], stdevs=_stdev(emb, self.p["noise_level"]),
            target=target, additional_forward_args=extra)
