"""A toy explainer, as a user would add one: later time steps score higher (score of feature j = j).
One module; captum's vocabulary only (it reads nothing but the example's feature count)."""
from __future__ import annotations

import numpy as np

from xbench.explainers.base import Explainer


class Recency(Explainer):
    """Recency: feature j (the j-th step, word or pixel in reading order) scores j."""

    name = "recency"
    family = "control"
    space = "model"

    def attribute(self, inputs, seed):
        return np.arange(inputs.example.n_features, dtype=np.float64)
