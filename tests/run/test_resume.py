"""Reproducible, resumable, shardable runs: real `xbench` processes, killed with SIGKILL and resumed.

The kills are exact: ``XBENCH_FAULT_KILL_WRITE="<substring>:<n>"`` makes the process SIGKILL itself in
the middle of its n-th atomic write to a matching path (half the bytes in the temp file), and one
kill comes from outside at a seeded random moment. After ``xbench run --resume`` the per-example
scores must equal an uninterrupted run's: no row missing, none duplicated, every value the same
(bit for bit; the wall-clock ``seconds`` metric is compared by its rows only).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xbench.cli import main
from xbench.results.leaderboard import read_scores
from xbench.run.repro import compare_scores

pytestmark = pytest.mark.slow  # the whole pipeline, more than once

ROOT = Path(__file__).resolve().parents[2]
# every metric of the default and full suites (full holds default's), on a task of each modality: the
# text-only (discrete stability), image-only (patch curves, localisation) and tabular-only (ground
# truth) metrics all run, with stochastic and deterministic explainers
ARGS = ["synthetic-sentiment", "synthetic-shapes", "synthetic-linear", "--n", "2", "--no-progress",
        "--suite", "full", "--explainers", "saliency,lime,random"]
MEASURED = ("seconds", "peak_memory")
KEY = ["task", "explainer", "metric", "example"]


ENV: dict[str, str] = {}


def xbench(*args: str, fault: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV, "TOKENIZERS_PARALLELISM": "false", "XBENCH_FAULT_KILL_WRITE": fault or ""}
    proc = subprocess.run([sys.executable, "-m", "xbench", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ENV["XBENCH_CACHE"] = str(tmp_path_factory.mktemp("resume-cache"))  # the subprocesses' own cache
    out = tmp_path_factory.mktemp("reference") / "run"
    xbench("run", *ARGS, "--out", str(out))
    return out


def same_scores(a: Path, b: Path) -> None:
    x, y = read_scores(a / "scores.csv"), read_scores(b / "scores.csv")
    assert len(x) == len(y) and not y.duplicated(KEY).any()
    assert x[KEY].equals(y[KEY])  # same rows in the same order
    timed = x["metric"].isin(MEASURED)
    assert set(x["metric"]) >= {"comprehensiveness", "faithfulness_correlation", "infidelity", "patch_deletion_auc",
                                "gt_pearson", "discrete_stability_spearman", "model_seed_stability",
                                "randomization_cascade", "comprehensiveness_normalized"}
    pd.testing.assert_frame_equal(x[~timed].reset_index(drop=True), y[~timed].reset_index(drop=True),
                                  check_exact=True)
    # the run-level tables are built from the per-unit files in config order: the same bytes
    lb = [json.loads((d / "leaderboard.json").read_text()) for d in (a, b)]
    strip = [[{k: v for k, v in r.items()} for r in rows if r["metric"] not in MEASURED and r["family"] != "cost"]
             for rows in lb]
    assert strip[0] == strip[1]


@pytest.mark.parametrize("fault", ["scores/:3", "explanations/:5", "manifest.json:4"])
def test_killed_mid_write_then_resumed_equals_uninterrupted(reference, tmp_path, fault, capsys):
    out = tmp_path / "run"
    killed = xbench("run", *ARGS, "--out", str(out), fault=fault, check=False)
    assert killed.returncode == -signal.SIGKILL, (fault, killed.returncode, killed.stderr[-1500:])
    assert list(out.rglob(".*.tmp")), "the kill left a half-written temp file"
    assert not (out / "scores.csv").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "running"
    # a fresh run into the same directory refuses, and points to --resume
    assert main(["run", *ARGS, "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    done_before = {p: p.stat().st_mtime_ns for p in out.glob("scores/*/*.csv")}
    xbench("run", "--resume", str(out))
    assert not list(out.rglob(".*.tmp"))
    m = json.loads((out / "manifest.json").read_text())
    assert m["status"] == "complete" and len(m["resumed"]) == 1
    same_scores(reference, out)
    # units finished before the kill were not redone: their scores files are untouched
    assert all(p.stat().st_mtime_ns == t for p, t in done_before.items())
    if fault == "scores/:3":
        assert len(done_before) == 2  # killed while writing the third unit's scores


def test_killed_twice_at_random_moments_then_resumed(reference, tmp_path):
    """SIGKILL from outside at a seeded random moment, twice (the second during the resumed run)."""
    out = tmp_path / "run"
    rng = np.random.default_rng(20261122)
    env = {**os.environ, **ENV, "TOKENIZERS_PARALLELISM": "false"}
    kills = 0
    for args in (["run", *ARGS, "--out", str(out)], ["run", "--resume", str(out)]):
        proc = subprocess.Popen([sys.executable, "-m", "xbench", *args], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait until the run has started writing units, then kill after a random extra delay
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not (out / "manifest.json").exists():
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.5, 3.0)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        if not (out / "manifest.json").exists():
            pytest.skip("the process was killed before it wrote its manifest")
    xbench("run", "--resume", str(out))
    assert kills >= 1
    same_scores(reference, out)


def test_resume_refuses_another_config_and_a_missing_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *ARGS, "--shard", "1/2", "--out", str(out)]) == 0  # half the units: unfinished
    m = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**m, "config_hash": "0" * 16}))
    capsys.readouterr()
    assert main(["run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "config_hash" in err and err.count("\n") == 1
    assert main(["run", "--resume", str(tmp_path / "nope")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["run", "--resume", str(out), "--n", "1"]) == 2
    assert "--n" in capsys.readouterr().err
    assert main(["run", *ARGS, "--shard", "3/2", "--out", str(tmp_path / "x")]) == 2


def test_two_runs_are_bitwise_identical_and_shards_merge_to_the_unsplit_run(reference, tmp_path, capsys):
    again = tmp_path / "again"
    xbench("run", *ARGS, "--out", str(again), "--no-cache")  # another process, attributions recomputed
    same_scores(reference, again)
    shards = [tmp_path / f"shard{k}" for k in (1, 2, 3)]
    for k, d in enumerate(shards, 1):
        assert main(["run", *ARGS, "--shard", f"{k}/3", "--out", str(d)]) == 0
        assert json.loads((d / "manifest.json").read_text())["status"] == "shard-complete"
    units = sorted(p.relative_to(d).as_posix() for d in shards for p in d.glob("scores/*/*.csv"))
    assert len(units) == len(set(units)) == 9  # 3 tasks x 3 explainers, each in exactly one shard
    merged = tmp_path / "merged"
    assert main(["merge", str(merged), *map(str, shards)]) == 0
    same_scores(reference, merged)
    other = tmp_path / "other"  # the same units with another n: another config
    assert main(["run", *ARGS, "--n", "1", "--shard", "2/3", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "m2"), str(shards[0]), str(other)]) == 2
    assert "different configs" in capsys.readouterr().err
    assert main(["merge", str(tmp_path / "m3"), str(shards[0]), str(tmp_path / "nope")]) == 2


def test_reproduce_reports_identical_and_names_differences(reference, tmp_path, capsys):
    capsys.readouterr()
    assert main(["reproduce", str(reference), "--out", str(tmp_path / "r1"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "identical:" in out and "model weights same" in out
    # tamper with one published score: reproduce names that cell and exits 1
    copy = tmp_path / "tampered"
    shutil.copytree(reference, copy)
    s = read_scores(copy / "scores.csv")
    i = s.index[(s["metric"] == "comprehensiveness") & (s["explainer"] == "saliency")][0]
    s.loc[i, "value"] += 0.01
    s.to_csv(copy / "scores.csv", index=False)
    assert main(["reproduce", str(copy), "--out", str(tmp_path / "r2"), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT" in out and "saliency" in out and "comprehensiveness" in out
    bad, totals = compare_scores(read_scores(copy / "scores.csv"), read_scores(tmp_path / "r2" / "scores.csv"), 0.02)
    assert totals["within_tolerance"] and not totals["identical"] and totals["differ"] == 1
    assert bad[["explainer", "metric"]].values.tolist() == [["saliency", "comprehensiveness"]]
    assert bad["max_abs_diff"].iloc[0] == pytest.approx(0.01)


def test_reproduce_reimports_a_module_class_explainer(tmp_path, capsys):
    """A run that used ``module:Class`` records the origin under ``plugins``; a new process that
    reproduces it imports the class again from that string."""
    example = ROOT / "examples" / "custom_explainer"
    if not (example / "my_explainers.py").exists():
        pytest.skip("examples/custom_explainer is absent")
    out = tmp_path / "run"
    args = ["run", "synthetic-linear", "--n", "4", "--no-progress", "--explainers", "my_explainers:AbsGradInput,random",
            "--metrics", "comprehensiveness,gt_pearson", "--out", str(out)]
    ENV["PYTHONPATH"] = os.pathsep.join([str(example), os.environ.get("PYTHONPATH", "")])
    try:
        xbench(*args)
        m = json.loads((out / "manifest.json").read_text())
        assert m["plugins"] == {"explainers": {"abs_grad_input": "my_explainers:AbsGradInput"}}
        res = xbench("reproduce", str(out), "--out", str(tmp_path / "again"))
        assert "identical:" in res.stdout
    finally:
        ENV.pop("PYTHONPATH")
