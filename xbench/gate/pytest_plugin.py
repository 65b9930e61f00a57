"""pytest plugin: the ``xbench_check`` fixture, a quality contract as a unit test.

Registered as ``[project.entry-points.pytest11] xbench = "xbench.gate.pytest_plugin"``, so installing
xbench makes the fixture available everywhere. Importing this module imports pytest only; xbench's
internals (torch, captum, transformers) load when a test calls the fixture, so pytest sessions that
do not use it pay nothing.

::

    def test_my_explainer_is_faithful(xbench_check):
        xbench_check("synthetic-sentiment", ["my_pkg.explainers:MyExplainer", "integrated_gradients"],
                     {"explainers": {"my_explainer": {"min": {"comprehensiveness": 0.3}, "max_rank": 3}}},
                     suite="quick", n=20)

The run goes into the test's ``tmp_path``; a violated bound fails the test with one line per bound
naming the task, explainer, metric, value and bound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pytest

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from xbench.gate.contract import BoundResult


@dataclass
class XBenchCheckResult:
    """A run that met its contract: the run directory, its leaderboard (one row per task,
    explainer and metric; ``xbench.results.leaderboard.ROW_FIELDS``), every bound checked, and the
    run's warnings (per-example failures are counted in the leaderboard's ``n_failed``)."""

    run_dir: Path
    leaderboard: "pd.DataFrame"
    bounds: list["BoundResult"]
    failures: list[str] = field(default_factory=list)

    def mean(self, explainer: str, metric: str, task: str | None = None) -> float:
        """The mean of one cell (the only task when ``task`` is None)."""
        lb = self.leaderboard
        rows = lb[(lb["explainer"] == explainer) & (lb["metric"] == metric)
                  & ((lb["task"] == task) if task is not None else True)]
        if len(rows) != 1:
            raise KeyError(f"{len(rows)} leaderboard rows for ({task}, {explainer}, {metric})")
        return float(rows["mean"].iloc[0])


@pytest.fixture
def xbench_check(tmp_path: Path) -> Callable[..., XBenchCheckResult]:
    """``xbench_check(task, explainers, contract, suite="quick", n=None, seed=0)``: run the suite's
    metrics on one task with the explainers into ``tmp_path``, then check the contract.

    - ``task``: a task name, a task YAML path, or a task mapping (as in a task file);
    - ``explainers``: names, ``"pkg.module:Class"`` strings, Explainer classes, or ``(name, params)``
      pairs (a bare name takes the suite's parameters for it);
    - ``contract``: a contract mapping or a YAML path (see :mod:`xbench.gate.contract`); its explainer
      names are the classes' ``name``;
    - ``suite``: a suite name (``suites/<suite>.yaml``) or a list of metric names / ``(name, params)``;
    - ``n``: examples (default: the suite's n, else all).

    Returns an :class:`XBenchCheckResult` when every bound holds; otherwise fails the test, one line
    per violated bound. Bad input (unknown names, malformed contract) fails it with the one-line error.
    """
    runs = iter(range(1, 10_000))

    def check(task: Any, explainers: Sequence[Any], contract: Any, suite: str | Sequence[Any] = "quick",
              n: int | None = None, seed: int = 0) -> XBenchCheckResult:
        from xbench.core.errors import XBenchError
        from xbench.gate.contract import evaluate_contract, load_contract
        from xbench.results.leaderboard import load_leaderboard
        from xbench.run.config import build_config
        from xbench.run.runner import Runner

        __tracebackhide__ = True
        out = tmp_path / f"xbench-run-{next(runs)}"
        try:
            c = load_contract(contract)
            cfg = build_config([task], suite, explainers, n=n, seed=seed)
            runner = Runner(cfg, out, progress=False, log=lambda msg: None)  # warnings: runner.failures
            runner.run()
            bounds = evaluate_contract(out, c)
            error = None
        except XBenchError as e:  # bad input: its one line, not a traceback
            error = str(e)
        if error is not None:
            pytest.fail(f"xbench_check: {error}", pytrace=False)
        bad = [b for b in bounds if not b.ok]
        if bad:
            lines = [f"xbench contract violated ({len(bad)} of {len(bounds)} bound(s); run in {out}):"]
            lines += [f"  {b.message}" for b in bad]
            lines += [f"  (run warning: {w})" for w in runner.failures]
            pytest.fail("\n".join(lines), pytrace=False)
        return XBenchCheckResult(out, load_leaderboard(out), bounds, list(runner.failures))

    return check
