"""``xbench publish``: regenerate a published leaderboard (``leaderboards/<suite>/``) in one command.

It runs the suite on the default tasks exactly as ``xbench run --suite <suite>`` does, writes the
plots and the HTML report into the run directory, and only then swaps the finished directory in
for the old one, so an interrupted publish leaves the published leaderboard as it was. The
per-unit score files (``scores/``) are left out of the published copy: ``scores.csv`` holds the
same rows.

The manifest's ``config_hash`` is the hash of the resolved run configuration (tasks, explainers
and metrics with every parameter, n, seed); ``tests/test_published.py`` checks the committed
leaderboards against the current code with it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from xbench.core.cache import content_key
from xbench.run.config import RunConfig, build_config

PUBLISHED = Path("leaderboards")


def publish_config(suite: str = "default", seed: int = 0) -> RunConfig:
    """The configuration ``xbench publish --suite <suite>`` runs: the suite's explainers, metrics and
    n on the default tasks (``tasks/*.yaml`` with ``default: true``). A suite with ``explainers: all``
    publishes xbench's built-in explainers only: a plugin registered in this process (or a test's
    explainer) does not change what the published leaderboard means."""
    return build_config(suite=suite, seed=seed, builtin_explainers=True)


def config_hash(config) -> str:
    """A stable hash of a resolved :class:`xbench.run.config.RunConfig` (its ``to_dict``)."""
    return content_key(config.to_dict())


def publish(out: Path, suite: str = "default", seed: int = 0, n_examples: int = 20, progress: bool = False,
            log=None, runtime: dict | None = None) -> tuple[Path, list[str]]:
    """Run the suite into a sibling temporary directory, write plots and ``report.html`` there, then
    replace ``out`` with it. Returns (out, the run's failure messages)."""
    from xbench.report.html import write_report
    from xbench.run.runner import Runner

    out = Path(out)
    cfg = publish_config(suite, seed)
    cfg.runtime.update(runtime or {})
    tmp = out.parent / f".{out.name}.publishing"
    old = out.parent / f".{out.name}.old"
    for d in (tmp, old):
        shutil.rmtree(d, ignore_errors=True)
    runner = Runner(cfg, tmp, progress=progress, log=log)
    runner.run()
    shutil.rmtree(tmp / "scores", ignore_errors=True)  # scores.csv holds every row
    write_report(tmp, tmp / "report.html", n_examples)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return out, runner.failures
