"""Importable things for the API tests (a function explainer and a torch module), as a user's own
module would hold them."""
import torch


def grad_norm(inputs):
    """|gradient| per embedding dimension, summed per position (captum Saliency)."""
    from captum.attr import Saliency

    return Saliency(inputs.forward_func).attribute(inputs.inputs, target=inputs.target,
                                                   additional_forward_args=inputs.additional_forward_args)


class Linear2(torch.nn.Module):
    """Logits (0, w · x): a tabular model whose exact attribution is known (w_j (x_j − b_j))."""

    def __init__(self, n_features: int = 4) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.arange(1.0, n_features + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x @ self.w
        return torch.stack([torch.zeros_like(z), z], dim=1)
