"""Cost: what an explanation costs, measured while it was computed (not estimated)."""
from __future__ import annotations

from xbench.metrics.base import Context, Metric


class _Cost(Metric):
    family = "cost"
    direction, ideal = "lower", 0.0
    range = (0.0, float("inf"))
    needs = frozenset()
    field_name = ""
    #: the value measures the machine (time, memory), not the explanation: it is not reproducible bit
    #: for bit, so ``xbench reproduce`` and the determinism tests leave it out
    measured = False

    def score_one(self, ctx: Context, i: int, state) -> float:
        return float(getattr(ctx.expl, self.field_name)[i])


class Seconds(_Cost):
    """Wall-clock seconds to explain one example (from the run that computed it, cached or not)."""

    name = "seconds"
    field_name = "seconds"
    measured = True
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


class TokensProcessed(_Cost):
    """Tokens the model processed for one example's explanation: the attention-mask ones of every row
    the explainer passed through it (padding not counted). Token-sequence tasks only."""

    name = "tokens_processed"
    field_name = "tokens"
    modalities = frozenset({"text", "lm"})
    formula = "Σ over the rows passed through the model of their tokens (attention-mask ones)"


class PeakMemoryMiB(_Cost):
    """Peak memory of explaining one example, in MiB (:class:`xbench.core.device.PeakMemory`): on CUDA
    the allocator's peak above what was allocated before the call; on the CPU the growth of the
    process's peak resident set size during the call (Linux ``VmHWM``, reset before each call, after
    freed heap memory is returned to the system), what the call added on top of the model and data
    already in memory. NaN (a failure) where it was not measured (attributions cached by an older
    xbench, or a system without ``/proc/self/clear_refs``)."""

    name = "peak_memory"
    field_name = "memory"
    measured = True
    formula = "CUDA: max_memory_allocated − memory_allocated before; CPU: VmHWM − VmRSS before (MiB)"


def measured_metrics() -> list[str]:
    """Names of the registered metrics whose values measure the machine (see ``_Cost.measured``)."""
    from xbench.metrics.base import Metric

    return [c.name for c in Metric.registry if getattr(c, "measured", False)]
