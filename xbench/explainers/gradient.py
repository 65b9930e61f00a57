"""Gradient explainers, all through captum: in word-embedding space for text, on the input itself
for images and tabular rows (the model adapter says which: ``grad_inputs``/``grad_forward``)."""
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

    def _forward(self, task):
        return task.model.grad_forward(task.spec.explained_output == "probability")

    def _reduce(self, task, attr: torch.Tensor) -> np.ndarray:
        return task.model.reduce_grad(attr, self.p.get("reduce", "sum"))

    def attribute(self, task, ex, target, seed):
        emb, base, extra = task.model.grad_inputs(ex, task.spec.replacement)
        with isolated_global_rng(seed):
            return self._reduce(task, self._captum(task, emb, base, extra, target))

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
