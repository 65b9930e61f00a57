"""A toy metric, as a user would add one: the drop in the target's probability when the single most
attributed feature is removed. One module; it plans on the shared engine like every metric."""
from __future__ import annotations

import numpy as np

from xbench.metrics.base import Context, Metric


class Top1Drop(Metric):
    """Top-1 drop: p(x) − p(x without its top-attributed feature) (ties broken as every metric breaks them)."""

    name = "top1_drop"
    family = "faithfulness"
    direction, ideal = "higher", 1.0
    range = (-1.0, 1.0)
    formula = "p(x) − p(x \\ top_1)"

    def plan_one(self, ctx: Context, i: int):
        return ctx.engine.submit(ctx.task.examples[i], ~ctx.top_masks(i, np.array([1])))

    def score_one(self, ctx: Context, i: int, handles) -> float:
        return ctx.p_full(i) - float(ctx.p_target(i, handles)[0])
