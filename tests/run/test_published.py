"""The committed leaderboard (leaderboards/default) must be what the current code produces.

Three checks, from cheap to thorough: the run configuration (tasks, explainers, metrics and all
their parameters) hashes to the manifest's ``config_hash``; the tables re-computed from the
committed per-example scores equal the committed tables; and a fresh run of the first examples
of every default task reproduces the committed per-example scores. Any failure means: run
``xbench publish`` and commit ``leaderboards/default``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xbench.results.leaderboard import load_leaderboard, read_scores, summarize, task_summary
from xbench.report.tables import to_markdown
from xbench.run.repro import TIMED
from xbench.run.publish import config_hash, publish_config
from xbench.run.config import RunConfig
from xbench.run.runner import Runner

pytestmark = pytest.mark.slow  # the whole pipeline, more than once

PUBLISHED = Path(__file__).resolve().parents[2] / "leaderboards" / "default"
FIX = "run `xbench publish` and commit leaderboards/default"


@pytest.fixture(scope="module")
def manifest():
    if not (PUBLISHED / "manifest.json").exists():
        pytest.fail(f"{PUBLISHED} has no manifest.json: {FIX}")
    return json.loads((PUBLISHED / "manifest.json").read_text())


def test_config_hash_is_current(manifest):
    cfg = publish_config("default")
    assert manifest["status"] == "complete" and not manifest["failures"]
    assert manifest.get("config_hash") == config_hash(cfg), \
        f"leaderboards/default was run with another configuration than the current default: {FIX}"
    assert manifest["config"] == json.loads(json.dumps(cfg.to_dict()))


def test_tables_are_current(manifest):
    scores = read_scores(PUBLISHED / "scores.csv")
    lb = summarize(scores)
    old = load_leaderboard(PUBLISHED)
    assert len(lb) == len(old) > 0
    pd.testing.assert_frame_equal(lb.reset_index(drop=True), old.reset_index(drop=True), check_dtype=False,
                                  rtol=0, atol=1e-9, obj=f"leaderboard.json ({FIX})")  # the JSON keeps 10 decimals
    summary = task_summary(lb)
    assert (PUBLISHED / "leaderboard.md").read_text() == to_markdown(lb, manifest, summary), FIX
    for f in ("leaderboard.csv", "leaderboard.tex", "summary.json", "report.html", "plots"):
        assert (PUBLISHED / f).exists(), f"leaderboards/default/{f} is missing: {FIX}"


def test_scores_reproduce(manifest, tmp_path):
    """The first examples of every default task, all explainers and metrics: same per-example values."""
    cfg = publish_config("default")
    n = 2
    probe = RunConfig(cfg.tasks, cfg.explainers, cfg.metrics, n=n, seed=cfg.seed, suite=cfg.suite)
    Runner(probe, tmp_path, progress=False, log=lambda m: None).run()
    new = read_scores(tmp_path / "scores.csv")
    old = read_scores(PUBLISHED / "scores.csv")
    key = ["task", "explainer", "metric", "example"]
    new = new[~new["metric"].isin(TIMED)]  # wall time and memory measure the machine: not reproducible
    both = new.merge(old, on=key, how="left", suffixes=("", "_published"))
    assert both["value_published"].notna().sum() + both["error_published"].notna().sum() > 0
    missing = both[both["error_published"].isna()]
    assert missing.empty, f"scores not in the published run, e.g. {missing[key].iloc[0].tolist()}: {FIX}"
    assert (both["error"] == both["error_published"]).all()
    a, b = both["value"].to_numpy(float), both["value_published"].to_numpy(float)
    close = np.isclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
    bad = both[~close]
    assert close.all(), (f"{len(bad)} per-example scores differ from the published run, e.g. "
                         f"{bad[key + ['value', 'value_published']].head(5).to_dict('records')}: {FIX}")
    assert len(both) == len(new) and set(new["task"]) == {t.name for t in cfg.tasks}
