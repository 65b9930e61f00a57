"""Metrics, one registered class each (:class:`~xbench.metrics.base.Metric`); importing the package
registers the built-in ones. A new metric is one module with a subclass that sets ``name`` and its
metadata and implements ``plan_one``/``score_one``."""
from xbench.metrics.base import Context, Metric
# the order of registration is the order of ``xbench list metrics``
from xbench.metrics import faithfulness, plausibility, model_stability, cost  # noqa: F401,I001  (built-ins)
from xbench.metrics import complexity, ground_truth, localisation, patches, sanity, stability  # noqa: F401,I001
from xbench.metrics import modality  # noqa: F401,E402  (after the joint metrics it restricts)
from xbench.metrics import quantus_bridge  # noqa: F401  (the ``quantus:`` prefix; imports quantus on first use)

__all__ = ["Context", "Metric"]
