"""A custom explainer for xbench: absolute gradient x input.

Copy this file, rename the class and its ``name``, and run it on any xbench task:

    xbench run synthetic-sentiment --explainers my_explainers:AbsGradInput --n 20

(with this folder on ``PYTHONPATH``, or installed with the entry point in ``pyproject.toml``).

The contract is one method, ``attribute(inputs, seed)``, returning one score per token position
(``scores = "tokens"``: xbench pools them into the task's features for you). ``inputs`` holds what
captum's ``attribute`` takes (``space = "input"``: in the model's differentiable input space):

- ``inputs.forward_func``: f(inputs, *additional_forward_args) -> (1, num_classes), the target's
  logit or probability (the task's ``explained_output``);
- ``inputs.inputs``: the example's input as a batch of one, requiring grad (word embeddings for
  text, the image or table row itself for dense tasks);
- ``inputs.baselines``: the task's "feature removed" input (the replacement token's embedding at
  every non-special position, or the dense task's baseline), the reference the faithfulness
  metrics use;
- ``inputs.target``: the class to explain; ``inputs.additional_forward_args``: what the forward
  function needs besides ``inputs``; ``inputs.reduce(attr, "sum")``: one score per position.
"""
from __future__ import annotations

import numpy as np
from captum.attr import InputXGradient, Saliency

from xbench import AttributionInputs, Explainer
from xbench.core.seeding import isolated_global_rng


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
    space = "input"                  # the model's differentiable input (or "presence": a 0/1 vector over features)
    params = {"from_baseline": False}
    version = 1                      # bump when the output changes: cached attributions are keyed on it

    def attribute(self, inputs: AttributionInputs, seed: int) -> np.ndarray:
        x, extra, target = inputs.inputs, inputs.additional_forward_args, inputs.target
        with isolated_global_rng(seed):  # captum takes no generator; harmless for deterministic methods
            if self.p["from_baseline"]:
                grads = Saliency(inputs.forward_func).attribute(x, target=target, abs=False,
                                                                additional_forward_args=extra)
                attr = (x - inputs.baselines).detach() * grads
            else:
                attr = InputXGradient(inputs.forward_func).attribute(x, target=target, additional_forward_args=extra)
        # sum over the embedding dimension (text) or flatten (dense), then the absolute value
        return np.abs(inputs.reduce(attr, "sum"))
