"""Perturbation explainers through captum, over a binary feature-presence vector.

captum perturbs ``z`` in {0,1}^F (all ones = the input; 0 = feature removed). The
forward function turns each ``z`` into token ids with the task's replacement policy
(:func:`xbench.perturb.materialize`), so explainers and metrics remove features in
exactly the same way. These calls go straight to the model, not through the
metrics' deduplicating engine, so their measured cost is their own.
"""
from __future__ import annotations

import torch

from ..perturb import materialize
from ..seeding import isolated_global_rng
from . import Explainer


def presence_forward(task, ex):
    model = task.model
    repl = int(model.replacement_ids[task.spec.replacement])

    def f(z: torch.Tensor) -> torch.Tensor:
        rows = materialize(ex, z.detach().numpy() > 0.5, task.spec.replacement, repl)
        return torch.from_numpy(model.outputs(rows, task.spec.explained_output))

    return f


class _PresenceExplainer(Explainer):
    family = "perturbation"

    def attribute(self, task, ex, target, seed):
        z = torch.ones(1, ex.n_features, dtype=torch.float64)
        with isolated_global_rng(seed):  # captum's samplers draw from the global RNG
            return self._captum(presence_forward(task, ex), z, target)[0].double().numpy()


class Occlusion(_PresenceExplainer):
    """Occlusion, leave-one-out (Zeiler & Fergus 2014; Li et al. 2016): p_y(x) - p_y(x without feature i)
    (captum ``FeatureAblation``)."""

    name = "occlusion"
    params = {"perturbations_per_eval": 64}

    def _captum(self, f, z, target):
        from captum.attr import FeatureAblation

        return FeatureAblation(f).attribute(z, baselines=0.0, target=target,
                                            perturbations_per_eval=self.p["perturbations_per_eval"])


class Lime(_PresenceExplainer):
    """LIME (Ribeiro et al. 2016; captum ``Lime``): ridge fit to p_y on random feature subsets,
    weighted by exp(-d^2 / 2w^2) with d the cosine distance to the input (LIME's text defaults)."""

    name = "lime"
    stochastic = True
    params = {"n_samples": 200, "kernel_width": 0.25, "alpha": 1.0, "perturbations_per_eval": 64}

    def _captum(self, f, z, target):
        from captum._utils.models.linear_model import SkLearnRidge
        from captum.attr import Lime as CLime
        from captum.attr._core.lime import get_exp_kernel_similarity_function

        lime = CLime(f, interpretable_model=SkLearnRidge(alpha=self.p["alpha"]),
                     similarity_func=get_exp_kernel_similarity_function("cosine", self.p["kernel_width"]))
        return lime.attribute(z, baselines=0.0, target=target, n_samples=self.p["n_samples"],
                              perturbations_per_eval=self.p["perturbations_per_eval"])


class KernelShap(_PresenceExplainer):
    """KernelSHAP (Lundberg & Lee 2017; captum ``KernelShap``): Shapley-kernel weighted linear fit."""

    name = "kernel_shap"
    stochastic = True
    params = {"n_samples": 200, "perturbations_per_eval": 64}

    def _captum(self, f, z, target):
        from captum.attr import KernelShap as CKernelShap

        return CKernelShap(f).attribute(z, baselines=0.0, target=target, n_samples=self.p["n_samples"],
                                        perturbations_per_eval=self.p["perturbations_per_eval"])
