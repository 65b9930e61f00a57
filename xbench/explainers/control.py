"""Controls: explainers that know nothing, to anchor every metric."""
from __future__ import annotations

import numpy as np

from xbench.explainers.base import Explainer


class RandomExplainer(Explainer):
    """Random control: i.i.d. U(0, 1) scores from a generator seeded per (task, example, seed)."""

    name = "random"
    family = "control"
    stochastic = True
    space = "model"

    def attribute(self, inputs, seed):
        return np.random.default_rng(seed).random(inputs.example.n_features)
