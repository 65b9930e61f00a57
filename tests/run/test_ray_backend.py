"""The Ray backend against the local one, on a local Ray instance with 2 CPUs: the same config gives
bit-identical per-example scores, attributions and curves on 1 process, on 2 Ray workers, on
``--shard`` + ``merge`` of the same partition, after a worker is killed mid-run (retried, counted in
the manifest, nothing lost or duplicated), and after a run that gave up is resumed. Bad input: an
unreachable cluster, Ray missing, options that need the Ray backend: one line, exit 2, nothing
written."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from xbench.cli import main
from xbench.core.errors import XBenchError
from xbench.results.leaderboard import read_scores
from xbench.run.config import build_config
from xbench.run.repro import compare_scores, merge
from xbench.run.runner import Runner

ray = pytest.importorskip("ray")

TASKS = ["breast-cancer-logreg", "synthetic-shapes"]
CHUNK = 8  # 20 examples per task: chunks of 8, 8 and 4 -> 6 partitions
# one thread, as each Ray worker of one CPU runs: on the CPU the thread count can change the last bits
# of a convolution's gradient (the partition and the seeds fix everything else)
ARGS = [*TASKS, "--suite", "quick", "--n", "20", "--chunk", str(CHUNK), "--threads", "1", "--no-progress",
        "--no-cache"]


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module (starting one costs seconds); backends find it running
    and leave it running."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def config():
    return build_config(TASKS, "quick", n=20, chunk=CHUNK, runtime={"threads": 1}, cache=False)


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    Runner(config(), out, progress=False).run()
    return out


def identical(a: Path, b: Path) -> None:
    """Same per-example scores (bit for bit, no row missing or duplicated), same attributions and
    curves, same files."""
    sa, sb = read_scores(a / "scores.csv"), read_scores(b / "scores.csv")
    assert len(sa) == len(sb) and not sb.duplicated(["task", "explainer", "metric", "example"]).any()
    _, totals = compare_scores(sa, sb)
    assert totals["identical"], totals
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    for f in files:
        if f.endswith(".npz"):
            za, zb = np.load(a / f), np.load(b / f)
            for k in ("flat", "ids") if "explanations/" in f else za.files:
                assert np.array_equal(za[k], zb[k], equal_nan=za[k].dtype.kind == "f"), (f, k)


def test_two_ray_workers_give_the_local_run_bit_for_bit(cluster, local, tmp_path):
    from xbench.run.backends import RayBackend

    out = tmp_path / "ray"
    backend = RayBackend(workers=2)
    Runner(config(), out, progress=False, backend=backend).run()
    identical(local, out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["backend"]["name"] == "ray" and m["backend"]["workers"] == 2 and m["backend"]["retries"] == []
    assert m["backend"]["examples_done"] == 40 and m["backend"]["partitions_done"] == 6
    info = m["tasks"]["synthetic-shapes"]
    assert info["partitions"]["count"] == 3 and info["n_examples"] == 20
    # each worker set torch's threads from its CPU share (1), whatever the driver's count
    assert {w["threads"] for w in info["partitions"]["workers"]} == {1}
    assert not (out / "parts").exists()  # the chunks were joined into the usual layout
    # xbench reproduce runs it again in one process, with the workers' thread count, bit for bit
    assert main(["reproduce", str(out), "--out", str(tmp_path / "again"), "--no-progress"]) == 0


def test_shards_of_the_same_partition_merge_to_the_local_run(local, tmp_path):
    shards = [tmp_path / f"s{k}" for k in (1, 2, 3)]
    for k, d in enumerate(shards, 1):
        assert main(["run", *ARGS, "--shard", f"{k}/3", "--out", str(d)]) == 0
    labels = [sorted(p.parent.name for p in (d / "parts").glob("*/*/entry.json")) for d in shards if (d / "parts").exists()]
    assert sum(len(x) for x in labels) >= 3  # chunks of a task ran in different shards
    merge(tmp_path / "merged", shards)
    identical(local, tmp_path / "merged")


def test_a_killed_worker_is_retried_counted_and_nothing_is_lost(cluster, local, tmp_path, monkeypatch):
    from xbench.run.backends import RayBackend

    monkeypatch.setenv("XBENCH_FAULT_KILL_PARTITION", "synthetic-shapes#1")  # SIGKILL on its first attempt
    out = tmp_path / "killed"
    Runner(config(), out, progress=False, backend=RayBackend(workers=2)).run()
    identical(local, out)
    retries = json.loads((out / "manifest.json").read_text())["backend"]["retries"]
    assert [(r["partition"], r["attempt"]) for r in retries] == [("synthetic-shapes#1", 1)]
    assert "Died" in retries[0]["error"] or "Crash" in retries[0]["error"]


def test_a_run_that_gave_up_keeps_its_partitions_and_resumes(cluster, local, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XBENCH_FAULT_KILL_PARTITION", "synthetic-shapes#2")
    out = tmp_path / "gaveup"
    assert main(["run", *ARGS, "--out", str(out), "--backend", "ray", "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert "synthetic-shapes#2" in err and "--resume" in err
    done = list((out / "parts").glob("*/*/entry.json")) + list((out / "scores").glob("*/*.csv"))
    assert done  # what finished before the worker died is on disk
    monkeypatch.delenv("XBENCH_FAULT_KILL_PARTITION")
    assert main(["run", "--resume", str(out), "--backend", "ray", "--no-progress"]) == 0
    identical(local, out)
    m = json.loads((out / "manifest.json").read_text())
    assert [r["partition"] for r in m["backend"]["retries"]] == ["synthetic-shapes#2"] and m["resumed"]


def test_the_python_api_runs_a_live_model_on_ray(cluster, tmp_path):
    import torch

    import xbench

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    kw = dict(explainers=["saliency", "occlusion"], metrics=["comprehensiveness", "deletion_auc"], chunk=5)
    a = xbench.evaluate(model, (X, y), out=tmp_path / "a", **kw)
    b = xbench.evaluate(model, (X, y), out=tmp_path / "b", backend="ray", **kw)
    assert compare_scores(a.scores, b.scores)[1]["identical"]


def test_bad_cluster_input_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "x"
    assert main(["run", *ARGS, "--backend", "ray", "--address", "127.0.0.1:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1:1" in err and "no Ray cluster" in err and err.count("\n") == 1 and not out.exists()
    assert main(["run", *ARGS, "--backend", "ray", "--address", "nohostport", "--out", str(out)]) == 2
    assert "host:port" in capsys.readouterr().err
    assert main(["run", *ARGS, "--workers", "2", "--out", str(out)]) == 2
    assert "--backend ray" in capsys.readouterr().err
    assert main(["run", *ARGS, "--backend", "ray", "--workers", "0", "--out", str(out)]) == 2
    assert main(["run", *TASKS, "--suite", "quick", "--chunk", "0", "--out", str(out)]) == 2
    assert "--chunk" in capsys.readouterr().err
    assert main(["run", "breast-cancer-logreg", "--suite", "quick", "--shard", "2/2", "--out", str(out)]) == 2
    assert "--chunk" in capsys.readouterr().err and not out.exists()
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    assert main(["run", *ARGS, "--backend", "ray", "--out", str(out)]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err and not out.exists()
    with pytest.raises(XBenchError, match="backend="):
        import xbench

        xbench.evaluate(None, (np.zeros((2, 2)), np.zeros(2)), backend="spark")
