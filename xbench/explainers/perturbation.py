"""Perturbation explainers through captum, over a binary feature-presence vector.

captum perturbs ``z`` in {0,1}^F (all ones = the input; 0 = feature removed). The
forward function turns each ``z`` into token ids with the task's replacement policy
(:func:`xbench.perturb.materialize`), so explainers and metrics remove features in
exactly the same way. These calls go straight to the model, not through the
metrics' deduplicating engine, so their measured cost is their own.

On images, features are pixels, and a method perturbing every pixel alone would need thousands
of model calls and fit thousands of coefficients; they perturb pixel *groups* instead (captum's
``feature_mask`` over the presence vector): ``patch`` x ``patch`` squares (``patch: auto`` is the
image side / 8) or SLIC superpixels (``segmentation: slic``), see :mod:`xbench.image_groups`. Every
pixel gets its group's score. Both parameters are ignored for text and tabular tasks, whose
features are perturbed one by one as before.
"""
from __future__ import annotations

import torch

from ..image_groups import check_image_params, image_groups
from ..seeding import isolated_global_rng
from . import Explainer

#: the parameters every presence explainer has for images (ignored for other modalities)
IMAGE_PARAMS = {"patch": "auto", "segmentation": "grid"}


def presence_forward(task, ex):
    model = task.model
    repl = model.replacement_ids.get(task.spec.replacement)

    def f(z: torch.Tensor) -> torch.Tensor:
        rows, _ = ex.perturb(z.detach().numpy() > 0.5, task.spec.replacement, repl)
        return torch.from_numpy(model.outputs(rows, task.spec.explained_output))

    return f


class _PresenceExplainer(Explainer):
    family = "perturbation"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        check_image_params(self.p, f"explainer {self.name!r}")

    def feature_mask(self, task, ex) -> dict:
        """captum's ``feature_mask`` keyword for image examples (pixel groups), else nothing."""
        if task.spec.modality != "image":
            return {}
        groups = image_groups(ex, self.p["patch"], self.p["segmentation"], f"explainer {self.name!r}")
        return {"feature_mask": torch.from_numpy(groups)[None]}

    def conventions(self, task):
        c = super().conventions(task)
        if task.spec.modality == "image":
            c["pixel_groups"] = f"{self.p['segmentation']}, patch {self.p['patch']} (each pixel gets its group's score)"
        return c

    def attribute(self, task, ex, target, seed):
        z = torch.ones(1, ex.n_features, dtype=torch.float64)
        with isolated_global_rng(seed):  # captum's samplers draw from the global RNG
            attr = self._captum(presence_forward(task, ex), z, target, **self.feature_mask(task, ex))
        return attr[0].double().numpy()


class Occlusion(_PresenceExplainer):
    """Occlusion, leave-one-out (Zeiler & Fergus 2014; Li et al. 2016): p_y(x) - p_y(x without feature i)
    (captum ``FeatureAblation``); on images, of each non-overlapping patch (or superpixel) at once."""

    name = "occlusion"
    params = {"perturbations_per_eval": 64, **IMAGE_PARAMS}

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
    """KernelSHAP (Lundberg & Lee 2017; captum ``KernelShap``): Shapley-kernel weighted linear fit."""

    name = "kernel_shap"
    stochastic = True
    params = {"n_samples": 200, "perturbations_per_eval": 64, **IMAGE_PARAMS}

    def _captum(self, f, z, target, **mask):
        from captum.attr import KernelShap as CKernelShap

        return CKernelShap(f).attribute(z, baselines=0.0, target=target, n_samples=self.p["n_samples"],
                                        perturbations_per_eval=self.p["perturbations_per_eval"], **mask)
