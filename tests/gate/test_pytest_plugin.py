"""The ``xbench_check`` pytest fixture (xbench/pytest_plugin.py), exercised through pytest's own
``pytester``: an inner test session that uses the fixture on the tiny linear task of tests/helpers.py,
with a contract that holds and one that does not."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parents[1]

INNER = textwrap.dedent('''
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, {tests!r})
    import helpers  # registers the test-records dataset and the test-linear model
    from helpers import LINEAR_TASK
    from xbench.explainers.perturbation import Occlusion

    METRICS = ["comprehensiveness", "token_f1"]
    EXPLAINERS = [("integrated_gradients", {{"n_steps": 8}}), "occlusion"]


    class OcclusionAgain(Occlusion):
        """Occlusion under another name: an explainer class handed to the fixture."""

        name = "plugin_test_occlusion"


    def test_contract_holds(xbench_check):
        res = xbench_check(LINEAR_TASK, EXPLAINERS + [OcclusionAgain, "my_explainers:ZeroScores"],
                           {{"explainers": {{"integrated_gradients": {{"min": {{"comprehensiveness": 0.0}},
                                                                   "max_rank": 4}},
                                            "plugin_test_zero": {{"max": {{"token_f1": 1.0}}}}}}}},
                           suite=METRICS)
        assert res.run_dir.is_dir() and (res.run_dir / "leaderboard.json").exists()
        assert set(res.leaderboard["explainer"]) == {{"integrated_gradients", "occlusion", "plugin_test_occlusion",
                                                     "plugin_test_zero"}}
        assert len(res.bounds) == 3 and all(b.ok for b in res.bounds)
        Path("means.json").write_text(json.dumps({{m: res.mean("integrated_gradients", m) for m in METRICS}}))


    def test_contract_violated(xbench_check):
        xbench_check(LINEAR_TASK, EXPLAINERS,
                     {{"explainers": {{"integrated_gradients": {{"min": {{"comprehensiveness": 0.99}},
                                                             "max": {{"token_f1": 0.1}}}},
                                      "occlusion": {{"min": {{"token_f1": 0.0}}}}}}}},
                     suite=METRICS)


    def test_bad_contract(xbench_check):
        xbench_check(LINEAR_TASK, EXPLAINERS, {{"explainers": {{"integrated_gradients": {{"min": {{"comprehensivness": 0.5}}}}}}}},
                     suite=METRICS)
''')

MODULE = textwrap.dedent('''
    import numpy as np
    from xbench.explainers import Explainer


    class ZeroScores(Explainer):
        """Every feature scores 0 (a plugin explainer reached as module:Class)."""

        name = "plugin_test_zero"

        def attribute(self, inputs, seed):
            return np.zeros(inputs.example.n_features)
''')


def test_entry_point_is_registered():
    eps = [ep for ep in entry_points(group="pytest11") if ep.name == "xbench"]
    assert eps, "pytest11 entry point 'xbench' missing: run pip install -e . after editing pyproject.toml"
    assert eps[0].value == "xbench.gate.pytest_plugin"


def test_plugin_import_is_light():
    code = ("import sys, xbench.gate.pytest_plugin; "
            "print([m for m in ('torch', 'numpy', 'pandas', 'captum', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_fixture_passes_and_fails_with_named_bounds(pytester):
    pytester.makepyfile(test_inner=INNER.format(tests=str(TESTS)), my_explainers=MODULE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    means = json.loads((pytester.path / "means.json").read_text())
    out = result.stdout.str()
    # one line per violated bound, naming task, explainer, metric, value and bound
    assert "xbench contract violated (2 of 3 bound(s); run in " in out
    assert f"linear: integrated_gradients comprehensiveness = {means['comprehensiveness']:.4g} < min 0.99" in out
    assert f"linear: integrated_gradients token_f1 = {means['token_f1']:.4g} > max 0.1" in out
    assert "occlusion token_f1" not in out  # the bound that held is not reported
    assert "xbench_check: <contract>: field 'explainers.integrated_gradients.min.comprehensivness': unknown metric" \
        in out
    assert "Traceback" not in out and "During handling" not in out
