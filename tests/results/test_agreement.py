"""Pairwise explainer agreement, by hand."""
import numpy as np
import pytest

from xbench.results.agreement import agreement
from xbench.report.tables import agreement_markdown as to_markdown


def test_agreement_by_hand():
    a = [np.array([4.0, 3.0, 2.0, 1.0]), np.array([1.0, -2.0, 0.5])]
    b = [np.array([4.0, 3.0, 1.0, 2.0]), np.array([-1.0, -2.0, 0.5])]
    c = [np.array([1.0, 1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0])]
    df = agreement("t", {"a": a, "b": b, "c": c}, k_fraction=0.5).set_index(["a", "b"])
    # ex 1: τ = (5 − 1)/6; top-2 {0,1} both; signs agree.  ex 2: τ = 1/3 (a: 1,-2,.5; b: -1,-2,.5);
    # k = 2, top-2 by |.|: a {1,0}, b {1,0}; signs agree on feature 1 only
    assert df.loc[("a", "b"), "kendall_tau"] == pytest.approx(np.mean([4 / 6, 1 / 3]))
    assert df.loc[("a", "b"), "topk_intersection"] == pytest.approx(1.0)
    assert df.loc[("a", "b"), "sign_agreement"] == pytest.approx(np.mean([1.0, 0.5]))
    assert df.loc[("b", "a"), "kendall_tau"] == df.loc[("a", "b"), "kendall_tau"]  # symmetric
    assert df.loc[("a", "a"), "kendall_tau"] == pytest.approx(1.0)
    assert np.isnan(df.loc[("a", "c"), "kendall_tau"])  # a constant explanation has no ranking
    md = to_markdown(df.reset_index())
    assert "## t: kendall_tau" in md and "–" in md


def test_agreement_is_written_with_a_run(tmp_path):
    import json

    import yaml

    from helpers import LINEAR_TASK
    from xbench.cli import main

    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(LINEAR_TASK))
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--suite", "eraser", "--no-progress",
                 "--explainers", "occlusion,input_x_gradient,random"]) == 0
    rows = json.loads((tmp_path / "r" / "agreement.json").read_text())
    pair = next(r for r in rows if r["a"] == "occlusion" and r["b"] == "input_x_gradient")
    assert pair["kendall_tau"] == pytest.approx(1.0)  # both equal the weights on the linear model
    assert "## linear: topk_intersection" in (tmp_path / "r" / "agreement.md").read_text()


def test_rows_come_in_the_same_order_in_every_process():
    """The pair order once came from a set of tuples, whose iteration order follows the per-process
    string hash seed."""
    import subprocess
    import sys

    code = ("import numpy as np; from xbench.results.agreement import agreement; "
            "a = {n: [np.arange(4.0) * (k + 1)] for k, n in enumerate(['zeta', 'alpha', 'mid'])}; "
            "print(agreement('t', a)[['a', 'b']].to_json())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__('os').environ, "PYTHONHASHSEED": str(s)}).stdout for s in (0, 1, 2, 3)}
    assert len(outs) == 1
