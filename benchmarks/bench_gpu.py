"""GPU check: run on a machine with a CUDA device. It checks what CI (CPU only) cannot.

1. **Equality with the CPU.** One config (``--tasks``, the ``quick`` suite's explainers and metrics,
   ``--n`` examples) is run twice into temporary run directories, ``--device cpu`` and
   ``--device cuda``, and every per-example score is compared (wall-clock and memory metrics left
   out). GPU kernels sum in other orders, so values agree to a tolerance, not bit for bit; the
   script reports the largest absolute difference per metric and fails (exit 1) beyond
   ``--tolerance`` (default 1e-4 absolute). Rankings (rank groups) are compared too.
2. **Throughput against bare forward passes.** For the text task, the unique inputs the shared
   engine pass evaluated are run again through the bare model (padded batches built before the
   timer, same order and batch size, ``torch.no_grad``, CUDA synchronised), and the engine pass's
   seconds are divided by the bare seconds: the adapter's overhead on the device.
3. **Memory.** The ``peak_memory`` cost metric per explainer (the CUDA allocator's peak above what
   was allocated before each example) and ``torch.cuda.max_memory_allocated`` for the whole run;
   the batch size the engine chose from free memory and any out-of-memory back-off the manifest
   recorded.
4. **Out-of-memory back-off.** With ``--oom-check`` the engine is given a batch size far beyond the
   device's memory (``--batch-size 2**22`` on a long-input task) so that the first batch fails; the
   run must finish, record the halvings in the manifest, and give the same scores as before.

    python benchmarks/bench_gpu.py                       # synthetic-sentiment, n = 40
    python benchmarks/bench_gpu.py --tasks synthetic-sentiment,synthetic-shapes --n 100 --json /tmp/gpu.json

Exit codes: 0 all checks passed, 1 a check failed, 2 no CUDA device.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import write_json  # noqa: E402  (benchmarks/ is on sys.path)


def run(tasks: list[str], n: int, device: str, out: Path, batch_size: int | None = None) -> dict:
    from xbench.run.config import build_config
    from xbench.run.runner import Runner

    runtime = {"device": device, **({"batch_size": batch_size} if batch_size else {})}
    cfg = build_config(tasks, "quick", n=n, seed=0, cache=False, runtime=runtime)
    t0 = time.perf_counter()
    Runner(cfg, out, progress=False, log=lambda m: None).run()
    return {"seconds": round(time.perf_counter() - t0, 2), "manifest": json.loads((out / "manifest.json").read_text())}


def compare(cpu: Path, gpu: Path, tolerance: float) -> tuple[list[dict], bool]:
    import numpy as np

    from xbench.results.leaderboard import load_leaderboard, read_scores
    from xbench.run.repro import TIMED, KEY

    a, b = read_scores(cpu / "scores.csv"), read_scores(gpu / "scores.csv")
    a, b = a[~a.metric.isin(TIMED)], b[~b.metric.isin(TIMED)]
    m = a.merge(b, on=KEY, suffixes=("_cpu", "_gpu"))
    rows, ok = [], len(m) == len(a) == len(b)
    for (task, metric), g in m.groupby(["task", "metric"], sort=False):
        x, y = g["value_cpu"].to_numpy(float), g["value_gpu"].to_numpy(float)
        both = np.isfinite(x) & np.isfinite(y)
        diff = float(np.max(np.abs(x[both] - y[both]))) if both.any() else 0.0
        same_nan = bool(np.array_equal(np.isnan(x), np.isnan(y)))
        rows.append({"task": task, "metric": metric, "n": len(g), "max_abs_diff": diff, "nan_pattern_same": same_nan,
                     "ok": diff <= tolerance and same_nan})
        ok &= rows[-1]["ok"]
    la, lb = load_leaderboard(cpu), load_leaderboard(gpu)
    groups = la.merge(lb, on=["task", "explainer", "metric"], suffixes=("_cpu", "_gpu"))
    q = groups[groups.family_cpu != "cost"]
    agree = float((q.rank_group_cpu == q.rank_group_gpu).mean()) if len(q) else 1.0
    rows.append({"task": "(all)", "metric": "rank groups equal", "n": len(q), "max_abs_diff": None,
                 "nan_pattern_same": None, "ok": True, "share": agree})
    return rows, ok


def throughput(task_name: str, n: int) -> dict:
    """Engine pass vs bare forward passes over the same unique inputs, on the GPU."""
    import numpy as np
    import torch

    from xbench.core.device import Runtime
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.metrics.scoring import Scoring
    from xbench.tasks.catalogue import resolve_task
    from xbench.tasks.task import load_task, targets_for

    task = load_task(resolve_task(task_name), n, Runtime.create("cuda"))
    if task.spec.modality != "text":
        return {"task": task_name, "note": "throughput is measured on text tasks"}
    engine = task.engine()
    targets, _, _ = targets_for(task, engine)
    scoring = Scoring(task, targets, engine)
    metrics = [Metric.registry.get(m)() for m in ("comprehensiveness", "sufficiency", "deletion_auc", "insertion_auc",
                                                  "faithfulness_correlation", "taucorr_loo")]
    for name in ("random", "saliency", "occlusion"):
        e = Explainer.registry.get(name)()
        scoring.plan(e.explain(task, task.examples, list(targets)), metrics, e)
    start = engine._n_done
    torch.cuda.synchronize()
    shared = scoring.run()
    torch.cuda.synchronize()
    rows = engine._rows
    order = sorted(range(start, len(rows)), key=lambda h: len(rows[h][0]))
    dev, bs, net = task.model.device, engine.batch_size, task.model.model
    batches = []
    for b in range(0, len(order), bs):
        seqs = [rows[h] for h in order[b:b + bs]]
        L = max(len(s[0]) for s in seqs)
        ids = np.full((len(seqs), L), task.model.pad_id, dtype=np.int64)
        att = np.zeros((len(seqs), L), dtype=np.int64)
        for i, (x, mk, _) in enumerate(seqs):
            ids[i, :len(x)], att[i, :len(x)] = x, mk
        batches.append({"input_ids": torch.from_numpy(ids).to(dev), "attention_mask": torch.from_numpy(att).to(dev)})
    with torch.no_grad():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for kw in batches:
            net(**kw)
        torch.cuda.synchronize()
        bare = time.perf_counter() - t0
    return {"task": task_name, "unique_inputs": shared["unique"], "batch_size": bs, "engine_seconds": shared["seconds"],
            "bare_forward_seconds": round(bare, 3), "engine_over_bare": round(shared["seconds"] / max(bare, 1e-9), 2),
            "inputs_per_second": round(shared["unique"] / max(shared["seconds"], 1e-9))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="synthetic-sentiment")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--oom-check", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    os.environ.setdefault("XBENCH_CACHE", tempfile.mkdtemp(prefix="xbench-gpu-cache-"))
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    work = Path(tempfile.mkdtemp(prefix="xbench-gpu-"))
    result: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "tasks": tasks, "n": args.n}
    cpu = run(tasks, args.n, "cpu", work / "cpu")
    torch.cuda.reset_peak_memory_stats()
    gpu = run(tasks, args.n, "cuda", work / "gpu")
    result["seconds"] = {"cpu": cpu["seconds"], "cuda": gpu["seconds"]}
    result["runtime"] = gpu["manifest"]["runtime"]
    result["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    rows, ok = compare(work / "cpu", work / "gpu", args.tolerance)
    result["equality"] = rows
    from xbench.results.leaderboard import load_leaderboard

    lb = load_leaderboard(work / "gpu")
    mem = lb[lb.metric == "peak_memory"][["task", "explainer", "mean"]]
    result["peak_memory_mib"] = mem.to_dict(orient="records")
    result["throughput"] = [throughput(t, args.n) for t in tasks]
    if args.oom_check:
        big = run(tasks, args.n, "cuda", work / "oom", batch_size=2**22)
        result["oom_backoffs"] = big["manifest"]["runtime"]["oom_backoffs"]
        rows2, ok2 = compare(work / "gpu", work / "oom", 0.0)
        result["oom_scores_equal"] = ok2
        ok &= ok2 and bool(result["oom_backoffs"])
    from tabulate import tabulate

    print(f"device {result['device']}; wall seconds cpu {cpu['seconds']}, cuda {gpu['seconds']}")
    print(tabulate([r for r in rows], headers="keys", tablefmt="github"))
    print(tabulate(result["throughput"], headers="keys", tablefmt="github"))
    print(tabulate(result["peak_memory_mib"], headers="keys", tablefmt="github"))
    print("PASS" if ok else f"FAIL: scores differ beyond {args.tolerance} (see the table)")
    if args.json:
        write_json(args.json, result)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
