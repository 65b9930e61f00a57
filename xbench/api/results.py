"""The results of a run, from Python: per-example scores and the leaderboard as pandas DataFrames,
saved as a normal run directory (so ``xbench report``, ``check`` and ``reproduce`` work on it)."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xbench.core.errors import XBenchError
from xbench.results.rundir import RunDir

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from xbench.gate.check import CheckResult


class Results:
    """A finished run (a run directory), read lazily.

    - ``scores``: one row per (task, explainer, metric, example): value, error, replacement, target;
    - ``leaderboard``: one row per (task, explainer, metric): mean, median, 95% bootstrap CI, n,
      n_failed, rank, rank group (paired Wilcoxon, Holm), p against the best, random-anchored score;
    - ``summary``: per (task, explainer): mean ranks per family and overall, cost, Pareto front;
    - ``manifest``: config, versions, runtime, per-task model and data facts;
    - ``failures``: the problems the run reported (failed examples are counted in ``n_failed``).
    """

    def __init__(self, run_dir: str | Path, failures: list[str] | None = None) -> None:
        self.dir = RunDir(run_dir)
        self.dir.require("leaderboard.json")
        self.failures = list(failures) if failures is not None else list(self.manifest.get("failures", []))

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def manifest(self) -> dict[str, Any]:
        return self.dir.manifest()

    @property
    def scores(self) -> "pd.DataFrame":
        from xbench.results.leaderboard import read_scores

        return read_scores(self.dir.require("scores.csv"))

    @property
    def leaderboard(self) -> "pd.DataFrame":
        from xbench.results.leaderboard import load_leaderboard

        return load_leaderboard(self.path)

    @property
    def summary(self) -> "pd.DataFrame":
        from xbench.results.leaderboard import task_summary

        return task_summary(self.leaderboard)[0]

    def table(self, metric_family: str | None = None) -> "pd.DataFrame":
        """The leaderboard as explainers x metrics of mean values (one task, or a ``task`` index level)."""
        lb = self.leaderboard
        if metric_family is not None:
            lb = lb[lb["family"] == metric_family]
        return lb.pivot_table(index=["task", "explainer"], columns="metric", values="mean", sort=False)

    def mean(self, explainer: str, metric: str, task: str | None = None) -> float:
        """The mean of one cell (the only task when ``task`` is None)."""
        lb = self.leaderboard
        rows = lb[(lb["explainer"] == explainer) & (lb["metric"] == metric) & ((lb["task"] == task) if task else True)]
        if len(rows) != 1:
            raise KeyError(f"{len(rows)} leaderboard rows for ({task}, {explainer}, {metric})")
        return float(rows["mean"].iloc[0])

    def markdown(self) -> str:
        return self.dir.require("leaderboard.md").read_text(encoding="utf-8")

    def save(self, path: str | Path) -> "Results":
        """Copy the run directory to ``path`` (new or empty) and return the results there."""
        path = Path(path)
        if path.resolve() == self.path.resolve():
            return self
        if path.exists() and any(path.iterdir()):
            raise XBenchError(f"{path}: exists and is not empty")
        shutil.copytree(self.path, path, dirs_exist_ok=True)
        return Results(path, self.failures)

    def report(self, html: str | Path | None = None, examples: int = 20, plots: bool = True) -> Path:
        """Write the self-contained HTML report (default ``<run>/report.html``) and return its path."""
        from xbench.report.html import write_report

        out = Path(html) if html is not None else self.path / "report.html"
        return write_report(self.path, out, examples, plots=plots)

    def check(self, baseline: str | Path | None = None, contract: Any = None, **kw: Any) -> "CheckResult":
        """Compare with a baseline run and/or check a quality contract (:func:`xbench.gate.check.check`)."""
        from xbench.gate.check import check

        return check(self.path, baseline, contract, **kw)

    def _repr_markdown_(self) -> str:  # pragma: no cover - notebooks
        return self.markdown()

    def __repr__(self) -> str:
        return f"Results({str(self.path)!r})"


def load_results(run_dir: str | Path) -> Results:
    """The results of a run directory written by ``xbench run`` or :func:`xbench.evaluate`."""
    return Results(run_dir)
