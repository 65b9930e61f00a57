"""Perturbation explainers through captum, over a binary feature-presence vector (``space =
"presence"``).

captum perturbs ``z`` in {0,1}^F (all ones = the input; 0 = feature removed). The
forward function turns each ``z`` into model inputs with the task's removal policy
(:meth:`xbench.features.protocol.Removal.apply`), so explainers and metrics remove features in
exactly the same way. These calls go straight to the model, not through the
metrics' deduplicating engine, so their measured cost is their own.

On images, features are pixels, and a method perturbing every pixel alone would need thousands
of model calls and fit thousands of coefficients; they perturb pixel *groups* instead (captum's
``feature_mask`` over the presence vector): ``patch`` x ``patch`` squares (``patch: auto`` is the
image side / 8) or SLIC superpixels (``segmentation: slic``), see :mod:`xbench.features.image`. Every
pixel gets its group's score. Both parameters are ignored by modalities that do not group features
(text, tabular), whose features are perturbed one by one.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from xbench.core.seeding import global_rng_for
from xbench.explainers.base import Explainer
from xbench.features.image import GROUP_PARAMS, check_image_params
from xbench.features.protocol import AttributionInputs

#: the parameters every presence explainer has for images (ignored for other modalities)
IMAGE_PARAMS = dict(GROUP_PARAMS)
IMAGE_PARAM_TYPES = {"patch": (str, int)}  # "auto" or a side in pixels


class _PresenceExplainer(Explainer):
    family = "perturbation"
    space = "presence"
    batch_params = ("perturbations_per_eval",)
    param_types = IMAGE_PARAM_TYPES
    #: whether captum's method samples from the global RNG (Lime, KernelShap): then each call runs
    #: inside :func:`~xbench.core.seeding.isolated_global_rng`; Occlusion draws nothing
    draws_global_rng: ClassVar[bool] = True

    def __init__(self, **params) -> None:
        super().__init__(**params)
        check_image_params(self.p, f"explainer {self.name!r}")

    def feature_mask(self, inputs: AttributionInputs) -> dict:
        """captum's ``feature_mask`` keyword where the modality groups features (image pixels), else
        nothing."""
        groups = inputs.groups(patch=self.p["patch"], segmentation=self.p["segmentation"],
                               who=f"explainer {self.name!r}")
        return {} if groups is None else {"feature_mask": torch.from_numpy(groups)[None]}

    def conventions(self, task):
        c = super().conventions(task)
        if task.modality.grouped:
            c["pixel_groups"] = f"{self.p['segmentation']}, patch {self.p['patch']} (each pixel gets its group's score)"
        return c

    def attribute(self, inputs: AttributionInputs, seed: int):
        with global_rng_for(seed, self.draws_global_rng):  # captum's samplers draw from the global RNG
            attr = self._captum(inputs.forward_func, inputs.inputs, inputs.target, **self.feature_mask(inputs))
        return inputs.to_features(attr)


class Occlusion(_PresenceExplainer):
    """Occlusion, leave-one-out (Zeiler & Fergus 2014; Li et al. 2016): p_y(x) - p_y(x without feature i)
    (captum ``FeatureAblation``); on images, of each non-overlapping patch (or superpixel) at once."""

    name = "occlusion"
    params = {"perturbations_per_eval": 64, **IMAGE_PARAMS}
    draws_global_rng = False

    def _captum(self, f, z, target, **mask):
        from captum.attr import FeatureAblation

        return FeatureAblation(f).attribute(z, baselines=0.0, target=target,
                                            perturbations_per_eval=self.p["perturbations_per_eval"], **mask)


class Lime(_PresenceExplainer):
    """LIME (Ribeiro et al. 2016; captum ``Lime``): ridge fit to p_y on random feature subsets,
    weighted by exp(-d^2 / 2w^2) with d the cosine distance to the input (LIME's text defaults)."""

    name = "lime"
    stochastic = True
    params = {"n_samples": 200, "kernel_width": 0.25, "alpha": 1.0, "perturbations_per_eval": 64, **IMAGE_PARAMS}

    def _captum(self, f, z, target, **mask):
        from captum._utils.models.linear_model import SkLearnRidge
        from captum.attr import Lime as CLime
        from captum.attr._core.lime import get_exp_kernel_similarity_function

        lime = CLime(f, interpretable_model=SkLearnRidge(alpha=self.p["alpha"]),
                     similarity_func=get_exp_kernel_similarity_function("cosine", self.p["kernel_width"]))
        return lime.attribute(z, baselines=0.0, target=target, n_samples=self.p["n_samples"],
                              perturbations_per_eval=self.p["perturbations_per_eval"], **mask)


class KernelShap(_PresenceExplainer):
    """KernelSHAP (Lundberg & Lee 2017; captum ``KernelShap``): Shapley-kernel weighted linear fit.
    With one player (one feature, or one group) the Shapley value is exact and needs no sampling,
    f(x) − f(baseline), which is returned (captum's sampler divides by zero there)."""

    name = "kernel_shap"
    stochastic = True
    params = {"n_samples": 200, "perturbations_per_eval": 64, **IMAGE_PARAMS}

    def _captum(self, f, z, target, **mask):
        from captum.attr import KernelShap as CKernelShap

        players = int(mask["feature_mask"].max()) + 1 if "feature_mask" in mask else z.shape[1]
        if players == 1:  # the one player's Shapley value: the whole difference to the baseline
            out = f(torch.cat([torch.ones_like(z), torch.zeros_like(z)]))
            return (out[0:1, target] - out[1:2, target]).to(torch.float64).reshape(1, 1).expand_as(z).clone()

        return CKernelShap(f).attribute(z, baselines=0.0, target=target, n_samples=self.p["n_samples"],
                                        perturbations_per_eval=self.p["perturbations_per_eval"], **mask)
