"""End-to-end benchmark of the embedded default run (what ``xbench run`` does with no arguments).

The run configuration is built by ``xbench.cli.config_from_args`` from the same argparse
namespace ``xbench run`` would parse (suite ``default``, the default tasks, seed 0),
and executed by ``xbench.run.runner.Runner`` into a temporary run directory. By default
``XBENCH_CACHE`` points at a fresh temporary directory, so the model is trained and
every explainer computes its attributions (a cold run); ``--warm-cache`` reuses the
normal cache (``$XBENCH_CACHE`` if set, else ``~/.cache/xbench``).

Reported:

- total wall time of ``Runner.run`` (and the manifest's own ``wall_seconds``);
- per task: ``load_task`` seconds (dataset + model train/load + encoding), the
  model's ``train_seconds`` from the manifest (the time recorded when the model was
  trained, which on a warm cache is an *earlier* run's figure) and whether training
  happened in this run, the perturbation engine's requested vs unique inputs, its
  forward passes and seconds (manifest ``tasks[...]['engine']``);
- per explainer: explanation seconds, forward and backward passes summed over the
  examples (from the run's ``explanations/<task>/<explainer>.npz``; on a cache hit
  these are the figures recorded when the attributions were computed), plus the
  wall time of ``Runner.explain`` in this process;
- peak RSS of this process (``resource.getrusage``).

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_default_run.py
    /work/venv/bin/python benchmarks/bench_default_run.py --n 40 --json /tmp/default.json
    /work/venv/bin/python benchmarks/bench_default_run.py --warm-cache
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="default", help="metric suite name or YAML path (default: default)")
    p.add_argument("--n", type=int, default=None, help="examples per task (default: the suite's n)")
    p.add_argument("--warm-cache", action="store_true",
                   help="reuse $XBENCH_CACHE or ~/.cache/xbench instead of a fresh temporary cache")
    p.add_argument("--out", default=None,
                   help="keep the run directory here (default: a temporary directory, deleted afterwards)")
    p.add_argument("--progress", action="store_true", help="show xbench's progress bars (off by default)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    return p.parse_args(argv)


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


from _machine import OtherCpu, load_note, other_note, write_json  # noqa: E402  (benchmarks/ is on sys.path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = load_note()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # as xbench.cli.main does
    tmp_cache = None
    if not args.warm_cache:
        tmp_cache = tempfile.mkdtemp(prefix="xbench-bench-cache-")
        os.environ["XBENCH_CACHE"] = tmp_cache  # before any xbench import
    tmp_out = None
    if args.out:
        out = Path(args.out)
    else:
        tmp_out = tempfile.mkdtemp(prefix="xbench-bench-run-")
        out = Path(tmp_out) / "run"

    t_import = time.perf_counter()
    import numpy as np
    from tabulate import tabulate

    import xbench.run.runner as runner_mod
    from xbench.core.cache import cache_dir
    from xbench.cli import config_from_args, parser
    import_s = time.perf_counter() - t_import

    cli_argv = ["run", "--suite", args.suite] + ([] if args.n is None else ["--n", str(args.n)])
    cli_args = parser().parse_args(cli_argv)
    cfg = config_from_args(cli_args)

    # instrumentation only: wrap two functions the runner calls, without changing what they do
    load_info: dict[str, dict[str, Any]] = {}
    explain_wall: dict[tuple[str, str], float] = {}
    orig_load_task, orig_explain = runner_mod.load_task, runner_mod.Runner.explain

    def timed_load_task(spec, n=None, *rest):
        t0 = time.perf_counter()
        task = orig_load_task(spec, n, *rest)
        load_info[spec.name] = {"wall_seconds": time.perf_counter() - t0,
                                "load_seconds": task.info.get("load_seconds")}
        return task

    def timed_explain(self, task, explainer, *a, **kw):
        t0 = time.perf_counter()
        try:
            return orig_explain(self, task, explainer, *a, **kw)
        finally:
            explain_wall[(task.name, explainer.name)] = time.perf_counter() - t0

    runner_mod.load_task, runner_mod.Runner.explain = timed_load_task, timed_explain
    try:
        progress = args.progress and sys.stderr.isatty()
        runner = runner_mod.Runner(cfg, out, progress=progress)
        t_run = time.time()
        other = OtherCpu().start()
        t0 = time.perf_counter()
        runner.run()
        wall = time.perf_counter() - t0
        other_share = other.share()
    finally:
        runner_mod.load_task, runner_mod.Runner.explain = orig_load_task, orig_explain

    manifest = json.loads((out / "manifest.json").read_text())
    result: dict[str, Any] = {
        "suite": cfg.suite, "n": cfg.n, "seed": cfg.seed,
        "cache": "warm" if args.warm_cache else "cold (fresh temporary XBENCH_CACHE)",
        "cache_dir": str(cache_dir()), "torch_threads": __import__("torch").get_num_threads(),
        "cpus": os.cpu_count(), "import_seconds": round(import_s, 3),
        "wall_seconds": round(wall, 3), "manifest_wall_seconds": manifest.get("wall_seconds"),
        "failures": len(manifest.get("failures", [])), "machine_before": load_before,
        "other_processes_cpu_share_during_run": other_share,
        "tasks": {},
    }
    for name, t in manifest["tasks"].items():
        minfo = t.get("model", {})
        meta = Path(minfo.get("cache_path", "")) / "meta.json"
        trained_now = meta.exists() and meta.stat().st_mtime >= t_run - 1
        explainers = {}
        for ename in t["explainers"]:
            with np.load(out / "explanations" / name / f"{ename}.npz") as z:
                explainers[ename] = {
                    "seconds": float(z["seconds"].sum()), "forward": int(z["forward"].sum()),
                    "backward": int(z["backward"].sum()), "n_examples": int(len(z["seconds"])),
                    "cache": t["explainers"][ename].get("cache"),
                    "explain_wall_seconds": round(explain_wall.get((name, ename), float("nan")), 3),
                }
        result["tasks"][name] = {
            "n_examples": t["n_examples"], "task_seconds": t.get("seconds"),
            "load_task_seconds": load_info.get(name, {}).get("load_seconds"),
            "model_train_seconds": minfo.get("train_seconds"), "model_trained_this_run": trained_now,
            "model_test_accuracy": minfo.get("test_accuracy"),
            "model_weights_sha256": t.get("model_weights_sha256"), "data_fingerprint": t.get("fingerprint"),
            "engine": t.get("engine"), "explainers": explainers,
        }
        ld = load_info.get(name, {}).get("wall_seconds") or 0.0
        ew = sum(v["explain_wall_seconds"] for v in explainers.values())
        result["tasks"][name]["other_task_seconds"] = round(
            (t.get("seconds") or 0.0) - ld - ew - (((t.get("engine") or {}).get("shared_pass") or {}).get("seconds")
                                                   or 0.0), 3)
    result["outside_tasks_seconds"] = round(wall - sum(t.get("seconds") or 0.0 for t in manifest["tasks"].values()), 3)
    result["peak_rss_mib"] = round(peak_rss_mib(), 1)

    # -- report ---------------------------------------------------------------------------
    print(f"xbench default-run benchmark: suite={cfg.suite} n={cfg.n} seed={cfg.seed} "
          f"cache={result['cache']} cpus={result['cpus']} torch_threads={result['torch_threads']}")
    summary = [["total wall (Runner.run)", f"{wall:.2f} s"],
               ["manifest wall_seconds", f"{manifest.get('wall_seconds')} s"],
               ["xbench import", f"{import_s:.2f} s"],
               ["peak RSS", f"{result['peak_rss_mib']:.1f} MiB"],
               ["failures reported", result["failures"]],
               ["machine before start", load_before],
               ["other processes' CPU during the run", other_note(other_share)]]
    for name, t in result["tasks"].items():
        e = {**((t["engine"] or {}).get("shared_pass") or {}), **{k: v for k, v in (t["engine"] or {}).items()
                                                                   if k != "shared_pass"}}
        summary += [[f"[{name}] task total", f"{t['task_seconds']} s"],
                    [f"[{name}] load_task (data+model+encode)", f"{t['load_task_seconds']} s"],
                    [f"[{name}] model train_seconds (manifest)",
                     f"{t['model_train_seconds']} s ({'trained in this run' if t['model_trained_this_run'] else 'from cache: an earlier run'})"],
                    [f"[{name}] engine requested / unique", f"{e.get('requested')} / {e.get('unique')}"
                     + (f" ({e['requested'] / max(1, e['unique']):.2f}x dedup)" if e else "")],
                    [f"[{name}] engine forward passes (shared pass)", e.get("forward_passes")],
                    [f"[{name}] engine.run seconds (shared pass)", f"{e.get('seconds')} s"],
                    [f"[{name}] rest (targets, hash, plan, score, writes)", f"{t['other_task_seconds']:.2f} s"],
                    [f"[{name}] model weights sha256 / data fingerprint",
                     f"{t['model_weights_sha256']} / {t['data_fingerprint']}"]]
    summary.append(["outside tasks (scores.csv, leaderboard)", f"{result['outside_tasks_seconds']:.2f} s"])
    print(tabulate(summary, tablefmt="simple"))
    for name, t in result["tasks"].items():
        rows = [[en, v["cache"], f"{v['seconds']:.2f}", f"{v['explain_wall_seconds']:.2f}", v["forward"],
                 v["backward"]] for en, v in t["explainers"].items()]
        tot = t["explainers"].values()
        rows.append(["TOTAL", "", f"{sum(v['seconds'] for v in tot):.2f}",
                     f"{sum(v['explain_wall_seconds'] for v in tot):.2f}",
                     sum(v["forward"] for v in tot), sum(v["backward"] for v in tot)])
        print(f"\nexplainers on {name} ({t['n_examples']} examples; sums over examples)")
        print(tabulate(rows, headers=["explainer", "cache", "explain s", "wall s (this run)", "forward",
                                      "backward"], tablefmt="simple"))
    if args.json:
        write_json(args.json, result)

    if tmp_out:
        shutil.rmtree(tmp_out, ignore_errors=True)
    if tmp_cache:
        shutil.rmtree(tmp_cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
