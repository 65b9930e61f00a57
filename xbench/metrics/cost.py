"""Cost: what an explanation costs, measured while it was computed (not estimated)."""
from __future__ import annotations

from xbench.metrics.base import Context, Metric


class _Cost(Metric):
    family = "cost"
    direction, ideal = "lower", 0.0
    range = (0.0, float("inf"))
    needs = frozenset()
    field_name = ""

    def score_one(self, ctx: Context, i: int, state) -> float:
        return float(getattr(ctx.expl, self.field_name)[i])


class Seconds(_Cost):
    """Wall-clock seconds to explain one example (from the run that computed it, cached or not)."""

    name = "seconds"
    field_name = "seconds"
    formula = "t_end − t_start around the explainer's call for the example"


class ForwardPasses(_Cost):
    """Model forward passes (input rows) the explainer used for one example."""

    name = "forward_passes"
    field_name = "forward"
    formula = "rows passed through the model, counted by the adapter"


class BackwardPasses(_Cost):
    """Backward passes (input rows whose gradient was taken) the explainer used for one example."""

    name = "backward_passes"
    field_name = "backward"
    formula = "rows back-propagated, counted by a hook on the logits"
