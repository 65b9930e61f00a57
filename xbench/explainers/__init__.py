"""Explainers, one registered class each (:class:`~xbench.explainers.base.Explainer`); importing the
package registers the built-in ones. A new explainer is one module with a subclass that sets ``name``
and implements ``attribute(inputs, seed)``."""
from xbench.explainers.base import Explainer, Explanations
# the order of registration is the order of ``explainers: all`` (and so of published configs)
from xbench.explainers import control, gradient, perturbation, attention, cam, custom  # noqa: F401,I001  (built-ins)

__all__ = ["Explainer", "Explanations"]
