"""Parameters are checked against their defaults' types (the rule, case by case), and a class can
widen one (``param_types``) or opt out (``typed_params``, the Quantus bridge)."""
import pytest

from xbench.core.errors import XBenchError
from xbench.core.registry import wrong_type
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric


@pytest.mark.parametrize("default,value,ok", [
    (True, False, True), (True, 1, False), (3, 4, True), (3, True, False), (3, 2.5, False),
    (0.5, 1, True), (0.5, 0.25, True), (0.5, False, False), (0.5, "0.5", False), ("a", "b", True),
    ("a", 3, False), ([1], (2,), True), ([1], "x", False), ([1], None, True), ({}, {"k": 1}, True),
    ({}, [1], False), (None, object(), True)])
def test_the_default_says_the_type(default, value, ok):
    assert (wrong_type(default, value) is None) is ok


def test_a_class_may_widen_a_parameter_or_opt_out():
    occ = Explainer.registry.get("occlusion")
    assert occ(patch=4).p["patch"] == 4 and occ(patch="auto").p["patch"] == "auto"
    with pytest.raises(XBenchError, match="parameter 'patch' must be str or int, got True"):
        occ(patch=True)
    with pytest.raises(XBenchError, match="parameter 'n_steps' must be an integer, got 2.5"):
        Explainer.registry.get("integrated_gradients")(n_steps=2.5)
    pf = Metric.registry.get("quantus:PixelFlipping")
    assert not pf.typed_params and pf.mistyped({"perturb_baseline": 0.0}) is None
