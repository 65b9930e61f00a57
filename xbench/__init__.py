"""xbench: explanation evaluation and benchmarking.

Tasks pair a model with a dataset; explainers attribute the model's prediction to
input features; metrics score the attributions for faithfulness, plausibility and
cost; the runner applies every explainer to every task and writes leaderboards.
"""
from .errors import XBenchError

__version__ = "0.1.0"
__all__ = ["XBenchError", "__version__"]
