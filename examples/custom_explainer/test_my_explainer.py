"""The contract as a test: `pytest examples/custom_explainer/test_my_explainer.py`.

``xbench_check`` is the fixture of xbench's pytest plugin (installed with xbench). It runs the suite
on the task into pytest's ``tmp_path`` and fails the test with one message per violated bound
(task, explainer, metric, value, bound). pytest puts this folder on ``sys.path``, so
``my_explainers:AbsGradInput`` imports without installing anything. The first run trains the
task's small BERT (about 20 s on 2 cores) and caches it in ~/.cache/xbench.
"""
from pathlib import Path

HERE = Path(__file__).parent


def test_abs_grad_input_meets_its_contract(xbench_check):
    result = xbench_check(
        "synthetic-sentiment",
        ["my_explainers:AbsGradInput", "input_x_gradient", "occlusion", "random"],
        contract=HERE / "contract.yaml",
        suite=str(HERE / "suite.yaml"),
        n=20,
    )
    assert result is not None
