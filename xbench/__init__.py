"""xbench: explanation evaluation and benchmarking.

Tasks pair a model with a dataset; explainers attribute the model's prediction to
input features; metrics score the attributions for faithfulness, plausibility, stability
and cost; the runner applies every explainer to every task and writes leaderboards.

From Python (see docs/api.md)::

    import xbench
    results = xbench.evaluate(model, data, tokenizer=tokenizer, explainers=["integrated_gradients"])
    results.leaderboard           # a pandas DataFrame with CIs and rank groups

The names below are imported on first use, so ``import xbench`` stays cheap (no torch).
"""
import os as _os
import sys as _sys

from xbench.core.errors import XBenchError

# OpenMP threads that spin while they wait made a run 8-11x slower with another CPU-heavy process on
# the machine; passive ones share the cores (xbench/core/device.py). The policy is read when OpenMP
# starts (when torch is imported), so it is set here, before, unless the user chose one.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "evaluate": "xbench.api.evaluate", "Results": "xbench.api.results", "load_results": "xbench.api.results",
    "Explainer": "xbench.explainers.base", "Metric": "xbench.metrics.base",
    "AttributionInputs": "xbench.features.protocol", "Modality": "xbench.features.protocol",
    "load_task": "xbench.tasks.task",
}
__all__ = ["XBenchError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xbench' has no attribute {name!r}")
