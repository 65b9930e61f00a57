"""Scale: the same configuration on one process, on 1 and 2 Ray workers, and as two concurrent
``--shard`` processes merged; wall time, speed-up over one worker, and whether every per-example
score and attribution is bit for bit the local run's.

The model is trained (or read from the cache) first, untimed; attributions are recomputed in every
variant (``--no-cache``). Every variant runs each model on one thread per worker (the local
reference with ``--threads 1``), since on the CPU the thread count changes the last bits of
gradients; the local run on all cores is timed too, for the speed-up a user sees.

    python benchmarks/bench_scale.py                          # synthetic-sentiment, default suite, n = 100
    python benchmarks/bench_scale.py --task synthetic-shapes --n 200 --chunk 50 --json /tmp/scale.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import report_load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def xbench(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xbench", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def timed(*procs_args: list[str]) -> float:
    t = time.perf_counter()
    procs = [xbench(*a) for a in procs_args]
    for p, a in zip(procs, procs_args):
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"xbench {' '.join(a)} failed ({p.returncode}): {err.strip().splitlines()[-1:]}")
    return time.perf_counter() - t


def same(a: Path, b: Path) -> dict:
    from xbench.results.leaderboard import read_scores
    from xbench.run.repro import compare_scores

    _, totals = compare_scores(read_scores(a / "scores.csv"), read_scores(b / "scores.csv"))
    worst = 0.0
    for f in a.glob("explanations/*/*.npz"):
        x, y = np.load(f)["flat"], np.load(b / f.relative_to(a))["flat"]
        if len(x):
            worst = max(worst, float(np.nanmax(np.abs(x - y))))
    return {"scores_identical": bool(totals["identical"]), "scores_compared": totals["compared"],
            "attributions_max_abs_diff": worst}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="synthetic-sentiment")
    ap.add_argument("--suite", default="default")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--chunk", type=int, default=25)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    report_load()
    work = Path(tempfile.mkdtemp(prefix="xbench-scale-"))
    os.environ.setdefault("XBENCH_CACHE", str(work / "cache"))
    base = [a.task, "--suite", a.suite, "--n", str(a.n), "--chunk", str(a.chunk), "--no-cache", "--no-progress"]
    timed([a.task, "--suite", "quick", "--n", "2", "--no-progress", "--out", str(work / "warm")])  # train the model
    rows = {}
    rows["local, all cores"] = timed([*base, "--out", str(work / "local-all")])
    rows["local, 1 thread"] = timed([*base, "--threads", "1", "--out", str(work / "local-1")])
    rows["ray, 1 worker"] = timed([*base, "--backend", "ray", "--workers", "1", "--out", str(work / "ray-1")])
    rows["ray, 2 workers"] = timed([*base, "--backend", "ray", "--workers", "2", "--out", str(work / "ray-2")])
    rows["--shard 1/2 + 2/2 (concurrent), 1 thread each"] = timed(
        *[[*base, "--threads", "1", "--shard", f"{k}/2", "--out", str(work / f"shard{k}")] for k in (1, 2)])
    t = time.perf_counter()
    from xbench.run.repro import merge

    merge(work / "merged", [work / "shard1", work / "shard2"])
    rows["--shard 1/2 + 2/2 (concurrent), 1 thread each"] += time.perf_counter() - t
    ref = work / "local-1"
    checks = {"ray, 1 worker": same(ref, work / "ray-1"), "ray, 2 workers": same(ref, work / "ray-2"),
              "--shard 1/2 + 2/2 (concurrent), 1 thread each": same(ref, work / "merged"),
              "local, all cores": same(ref, work / "local-all")}
    one = rows["ray, 1 worker"]
    print(f"\n{a.task}, suite {a.suite}, n = {a.n}, chunks of {a.chunk}; reference: local, 1 thread\n")
    print(f"| variant | wall s | speed-up over 1 Ray worker | scores bit-identical | attributions max |diff| |")
    print("|---|---|---|---|---|")
    out = []
    for k, v in rows.items():
        c = checks.get(k, {"scores_identical": True, "attributions_max_abs_diff": 0.0})
        print(f"| {k} | {v:.1f} | {one / v:.2f}x | {'yes' if c['scores_identical'] else 'NO'} | "
              f"{c['attributions_max_abs_diff']:.2g} |")
        out.append({"variant": k, "seconds": round(v, 2), "speedup_vs_1_worker": round(one / v, 3), **c})
    if a.json:
        Path(a.json).write_text(json.dumps({"task": a.task, "suite": a.suite, "n": a.n, "chunk": a.chunk,
                                            "cpus": os.cpu_count(), "rows": out}, indent=1))


if __name__ == "__main__":
    main()
