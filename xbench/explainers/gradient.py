"""Gradient explainers, all through captum: in word-embedding space for text, on the input itself
for images and tabular rows (the modality's adapter builds the inputs: ``space = "input"``).

Saliency, InputXGradient and Integrated Gradients draw nothing random (no global-RNG fork) and take
the opt-in ``batch_examples`` (examples per captum call; :mod:`xbench.explainers.base`, *Batching*).
SmoothGrad and GradientSHAP sample from the global RNGs: one example per call, inside the fork."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from xbench.core.seeding import global_rng_for
from xbench.explainers.base import Explainer, stack_inputs, unstack
from xbench.features.protocol import AttributionInputs


class _EmbeddingExplainer(Explainer):
    family = "gradient"
    needs = frozenset({"gradients"})
    scores = "tokens"
    space = "input"
    #: whether the captum method draws from the global RNGs (then each call runs inside
    #: :func:`~xbench.core.seeding.isolated_global_rng`, seeded by the example's seed); the
    #: deterministic methods draw nothing, and skip the fork's cost (a ``torch.manual_seed`` each)
    draws_global_rng: ClassVar[bool] = True

    def attribute(self, inputs: AttributionInputs, seed: int) -> np.ndarray:
        with global_rng_for(seed, self.draws_global_rng):
            attr = self._captum(inputs.forward_func, inputs.inputs, inputs.baselines,
                                inputs.additional_forward_args, inputs.target)
        return inputs.reduce(attr, self.p.get("reduce", "sum"))

    def attribute_batch(self, inputs: list[AttributionInputs], seeds: list[int]) -> list[np.ndarray]:
        """One captum call over the stacked inputs with per-row targets (deterministic methods only:
        a sampler would draw other noise for a batch than for its examples one by one)."""
        if self.draws_global_rng:
            raise NotImplementedError(f"explainer {self.name} draws random numbers: it is not batched")
        emb, base, extra, target = stack_inputs(inputs)
        attr = self._captum(inputs[0].forward_func, emb, base, extra, target)
        how = self.p.get("reduce", "sum")
        return [x.reduce(unstack(attr, k), how) for k, x in enumerate(inputs)]


class _Batchable:
    """Mixin of the deterministic gradient methods: no global-RNG fork, and the opt-in parameter
    ``batch_examples`` (examples per captum call, default 1: one at a time)."""

    draws_global_rng = False
    batchable = True
    optional_params = {"batch_examples": 1}

    def _captum(self, forward, emb, base, extra, target) -> torch.Tensor:
        raise NotImplementedError


class Saliency(_Batchable, _EmbeddingExplainer):
    """Saliency (Simonyan et al. 2014): |d p_y / d e|, summed over the embedding (captum ``Saliency``)."""

    name = "saliency"
    params = {"abs": True, "reduce": "sum"}
    batch_params = ("batch_examples",)

    def _captum(self, forward, emb, base, extra, target):
        from captum.attr import Saliency as CSaliency

        return CSaliency(forward).attribute(emb, target=target, abs=self.p["abs"],
                                                       additional_forward_args=extra)


class InputXGradient(_Batchable, _EmbeddingExplainer):
    """Input x gradient (Shrikumar et al. 2016): e * d p_y / d e, summed over the embedding."""

    name = "input_x_gradient"
    params = {"reduce": "sum"}
    batch_params = ("batch_examples",)

    def _captum(self, forward, emb, base, extra, target):
        from captum.attr import InputXGradient as CIxG

        return CIxG(forward).attribute(emb, target=target, additional_forward_args=extra)


class IntegratedGradients(_Batchable, _EmbeddingExplainer):
    """Integrated Gradients (Sundararajan et al. 2017) from the replacement-token baseline (captum)."""

    name = "integrated_gradients"
    params = {"n_steps": 32, "method": "gausslegendre", "internal_batch_size": 64, "reduce": "sum"}
    batch_params = ("internal_batch_size", "batch_examples")

    def _captum(self, forward, emb, base, extra, target):
        from captum.attr import IntegratedGradients as CIG

        return CIG(forward).attribute(
            emb, baselines=base, target=target, additional_forward_args=extra, n_steps=self.p["n_steps"],
            method=self.p["method"], internal_batch_size=self.p["internal_batch_size"])


def _stdev(emb: "torch.Tensor | tuple", noise_level: float) -> "float | tuple[float, ...]":
    """Noise scale relative to the example's embedding range (Smilkov et al. 2017); for several inputs
    (a multimodal example's pixels and word embeddings) one scale each, relative to its own range."""
    if isinstance(emb, tuple):
        return tuple(_stdev(e, noise_level) for e in emb)
    return float(noise_level * (emb.detach().max() - emb.detach().min()))


class SmoothGrad(_EmbeddingExplainer):
    """SmoothGrad (Smilkov et al. 2017): saliency averaged over Gaussian-noised embeddings (captum
    ``NoiseTunnel``); sigma = noise_level * (max - min) of the example's embeddings."""

    name = "smoothgrad"
    stochastic = True
    params = {"nt_samples": 16, "noise_level": 0.1, "nt_samples_batch_size": 16, "reduce": "sum"}
    batch_params = ("nt_samples_batch_size",)

    def _captum(self, forward, emb, base, extra, target):
        from captum.attr import NoiseTunnel
        from captum.attr import Saliency as CSaliency

        return NoiseTunnel(CSaliency(forward)).attribute(
            emb, nt_type="smoothgrad", nt_samples=self.p["nt_samples"], stdevs=_stdev(emb, self.p["noise_level"]),
            nt_samples_batch_size=self.p["nt_samples_batch_size"], target=target,
            additional_forward_args=extra)


class GradientShap(_EmbeddingExplainer):
    """GradientSHAP (Lundberg & Lee 2017; captum ``GradientShap``): expected gradients x (e - baseline)
    over random points on the path from the replacement-token baseline, with Gaussian noise."""

    name = "gradient_shap"
    stochastic = True
    params = {"n_samples": 16, "noise_level": 0.0, "reduce": "sum"}

    def _captum(self, forward, emb, base, extra, target):
        from captum.attr import GradientShap as CGradientShap

        return CGradientShap(forward).attribute(
            emb, baselines=base, n_samples=self.p["n_samples"], stdevs=_stdev(emb, self.p["noise_level"]),
            target=target, additional_forward_args=extra)
