"""Grad-CAM (Selvaraju et al. 2017) through captum, for image models with a convolutional layer.

    L^c = ReLU(Σ_k α_k^c A^k),   α_k^c = mean over (i, j) of ∂y^c / ∂A^k_ij

with A^k the k-th feature map of the chosen layer and y^c the explained output (the target's
logit, or probability). captum's ``LayerGradCam`` computes L^c at the layer's resolution and
``LayerAttribution.interpolate`` upsamples it to the input's (bilinear, as in the paper); each pixel
feature gets the map's value at that pixel.

The layer is the model's ``cam_layer`` attribute (a module name; :class:`xbench.models.cnn.SmallCNN`
names the rectified output of its last convolution), the ``layer`` parameter if given, or else the
last ``nn.Conv2d`` the model registers.
"""
from __future__ import annotations

import torch

from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer


def cam_layer(model: torch.nn.Module, name: str | None = None) -> tuple[str, torch.nn.Module]:
    """(name, module) of the layer Grad-CAM explains: ``name``, the model's ``cam_layer``, or its
    last ``nn.Conv2d``."""
    name = name or getattr(model, "cam_layer", None)
    if name:
        try:
            return name, model.get_submodule(name)
        except AttributeError:
            raise XBenchError(f"explainer 'grad_cam': the model has no layer {name!r}") from None
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if not convs:
        raise XBenchError("explainer 'grad_cam': the model has no nn.Conv2d layer and names no 'cam_layer'")
    return convs[-1]


class GradCam(Explainer):
    """Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k α_k A^k) at the last conv layer, α_k the spatial mean
    of the gradient, upsampled bilinearly to the input (captum ``LayerGradCam`` + ``interpolate``)."""

    name = "grad_cam"
    family = "gradient"
    needs = frozenset({"gradients"})
    modalities = frozenset({"image"})
    space = "input"
    params = {"relu": True, "interpolate": "bilinear", "layer": None}

    def __init__(self, **params) -> None:
        super().__init__(**params)
        if self.p["interpolate"] not in ("bilinear", "nearest", "bicubic"):
            raise XBenchError(f"explainer 'grad_cam': parameter 'interpolate' must be bilinear, nearest or "
                              f"bicubic, got {self.p['interpolate']!r}")

    def conventions(self, task):
        name, _ = cam_layer(task.module, self.p["layer"])
        return {**super().conventions(task), "layer": name, "relu": bool(self.p["relu"]),
                "upsampling": self.p["interpolate"]}

    def attribute(self, inputs, seed):
        from captum.attr import LayerAttribution, LayerGradCam

        _, layer = cam_layer(inputs.module, self.p["layer"])
        x = inputs.inputs
        cam = LayerGradCam(inputs.forward_func, layer).attribute(x, target=inputs.target,
                                                                 relu_attributions=bool(self.p["relu"]))
        if cam.dim() != 4:
            raise XBenchError(f"explainer 'grad_cam': layer output must be (N, C, H, W), got {tuple(cam.shape)}")
        up = LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), self.p["interpolate"])
        return up[0, 0].double().cpu().numpy().reshape(-1)
