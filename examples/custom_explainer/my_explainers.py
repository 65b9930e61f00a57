"""A custom explainer for xbench: absolute gradient x input.

Copy this file, rename the class and its ``name``, and run it on any xbench task:

    xbench run synthetic-sentiment --explainers my_explainers:AbsGradInput --n 20

(with this folder on ``PYTHONPATH``, or installed with the entry point in ``pyproject.toml``).

The contract is one method, ``attribute(task, ex, target, seed)``, returning one score per token
position (``scores = "tokens"``: xbench pools them into the task's features for you). The model
adapter hands over the same tensors captum's methods take:

- ``inputs``: the example's input as a batch of one, requiring grad (word embeddings for text,
  the image or table row itself for dense tasks);
- ``baselines``: the task's "feature removed" input (the replacement token's embedding at every
  non-special position, or the dense task's baseline), the reference the faithfulness metrics use;
- ``additional_forward_args``: what the forward function needs besides ``inputs``.
"""
from __future__ import annotations

import numpy as np
from captum.attr import InputXGradient, Saliency

from xbench.explainers import Explainer
from xbench.seeding import isolated_global_rng


class AbsGradInput(Explainer):
    """|gradient x input| per token: |Σ_d x_d ∂f_y/∂x_d| (captum ``InputXGradient``), or
    |Σ_d (x_d − b_d) ∂f_y/∂x_d| from the task's baseline b with ``from_baseline: true``.

    d runs over the token's embedding dimensions (text); on images and tables each input element
    is scored alone and xbench sums a pixel's channels. f_y is the target class's logit (or
    probability: the task's ``explained_output``)."""

    name = "abs_grad_input"          # results, leaderboards and contracts use this name
    family = "gradient"              # gradient | perturbation | attention | control
    needs = frozenset({"gradients"})
    stochastic = False               # True if it draws random numbers (then use ``seed``)
    scores = "tokens"                # one score per token position; pooled into features by xbench
    params = {"from_baseline": False}
    version = 1                      # bump when the output changes: cached attributions are keyed on it

    def attribute(self, task, ex, target: int, seed: int) -> np.ndarray:
        inputs, baselines, extra = task.model.grad_inputs(ex, task.spec.replacement)
        # f(inputs, *extra) -> (1, num_classes): the logit, or the probability if the task says so
        forward = task.model.grad_forward(task.spec.explained_output == "probability")
        with isolated_global_rng(seed):  # captum takes no generator; harmless for deterministic methods
            if self.p["from_baseline"]:
                grads = Saliency(forward).attribute(inputs, target=target, abs=False,
                                                    additional_forward_args=extra)
                attr = (inputs - baselines).detach() * grads
            else:
                attr = InputXGradient(forward).attribute(inputs, target=target, additional_forward_args=extra)
        # sum over the embedding dimension (text) or flatten (dense), then the absolute value
        return np.abs(task.model.reduce_grad(attr, "sum"))
