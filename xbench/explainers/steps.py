"""Per-step attributions of a continuation: one row per generated token, one column per prompt feature.

A continuation target explains the sum of its tokens' log-probabilities; row k here explains step k
alone, log p(a_k | x, a_<k), with the same explainer (each step its own seeds). For explainers linear in
the explained score (input × gradient, Integrated Gradients, occlusion on log-probabilities) the rows
sum to the continuation's attribution; aggregate otherwise as the question needs (e.g. max over steps).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from xbench.explainers.base import Explainer


def step_attributions(explainer: "Explainer", task: Any, example: Any, seed: int = 0) -> np.ndarray:
    """(T, F) attributions of example's T answer tokens over its F prompt features (module docstring)."""
    readout = getattr(example, "readout", None)
    if readout is None:
        raise ValueError(f"example {example.id}: per-step attributions need a generative (lm) task")
    steps = [example.at_step(k) for k in range(len(readout.answer))]
    out = explainer.explain(task, steps, [0] * len(steps), seed)
    return np.stack(out.attributions)
