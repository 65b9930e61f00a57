"""The task catalogue: every task file loads, says what it is, and runs here or says in one line why not."""
from __future__ import annotations

import json
import re
import time

import pytest

from xbench.tasks.catalogue import task_specs
from xbench.spec.catalogue import tasks_dir
from xbench.cli import main

TASK_FILES = sorted(tasks_dir().glob("*.yaml"))


def test_every_task_file_parses_and_is_listed(capsys):
    specs = task_specs()
    assert len(specs) == len(TASK_FILES) >= 10
    assert main(["list", "tasks", "--json", "--check"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(specs)
    for r in rows.values():
        assert r["modality"] in ("text", "image", "tabular", "lm", "multimodal") and r["model"] and r["size"]
        why = r["runs_here"]
        assert why == "yes" or (re.search(r"(^|: )needs (network|data|package)", why) and "\n" not in why), why
    # the offline catalogue is runnable here whatever the network
    for name in ("synthetic-sentiment", "synthetic-shapes", "synthetic-linear", "digits", "breast-cancer-mlp",
                 "templates-minilm"):
        assert rows[name]["runs_here"] == "yes", name


def test_default_run_covers_four_modalities_with_ground_truth():
    default = [s for s in task_specs().values() if s.default]
    assert {s.modality for s in default} == {"text", "image", "tabular", "lm"}
    assert "kv-retrieval" in {s.name for s in default}
    assert all(s.rationale for s in default)


@pytest.mark.parametrize("path", [p for p in TASK_FILES if "source: hub" in p.read_text()],
                         ids=lambda p: p.stem)
def test_network_tasks_fail_fast_offline_with_one_line(path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    t0 = time.perf_counter()
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and time.perf_counter() - t0 < 10
    assert len(err.splitlines()) == 1 and "needs network" in err and str(path.name) in err
    assert not (tmp_path / "run").exists()  # nothing written for a task that cannot run
