"""How much slower a run gets with another CPU-heavy process beside it.

Runs one xbench command (default: ``xbench run synthetic-sentiment --suite quick --n 40 --no-cache``,
models from a warm cache) ``--repeats`` times alone, then as many times beside ``--load`` background
processes, and prints the median wall seconds of each and their ratio. The background load is a
second torch process doing matrix products on torch's default thread count (``--load-kind torch``,
what another run or a test session is), or a pure-Python busy loop (``--load-kind python``).

    python benchmarks/bench_contention.py
    python benchmarks/bench_contention.py --load 2 --load-kind python --json /tmp/contention.json
    python benchmarks/bench_contention.py --python /path/to/other/venv/bin/python   # another install

On 2 cores, torch's OpenMP threads that spin while waiting made such a run 8-11x slower; xbench sets
``OMP_WAIT_POLICY=PASSIVE`` (unless the environment sets it) so that they yield the core instead.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import load_note, write_json  # noqa: E402  (benchmarks/ is on sys.path)

TORCH_LOAD = ("import torch\nx = torch.randn(512, 512)\nwhile True:\n    x = torch.tanh(x @ x / 512)\n")
PY_LOAD = "while True:\n    pass\n"


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose xbench is timed")
    ap.add_argument("--args", default="run synthetic-sentiment --suite quick --n 40 --no-cache --no-progress",
                    help="the xbench command line")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--load", type=int, default=1, help="background processes")
    ap.add_argument("--load-kind", choices=["torch", "python"], default="torch")
    ap.add_argument("--json")
    args = ap.parse_args()
    env = dict(os.environ)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"xbench-contention-{os.getpid()}"

    def command(tag: str) -> list[str]:
        return [args.python, "-m", "xbench", *args.args.split(), "--out", f"{out}-{tag}"]

    note = load_note()
    timed(command("warm"), env)  # trains/caches the model; imports warm the page cache
    alone = [timed(command(f"a{i}"), env) for i in range(args.repeats)]
    code = TORCH_LOAD if args.load_kind == "torch" else PY_LOAD
    loads = [subprocess.Popen([args.python, "-c", code], env={k: v for k, v in env.items() if k != "OMP_WAIT_POLICY"})
             for _ in range(args.load)]
    try:
        time.sleep(2.0)
        beside = [timed(command(f"b{i}"), env) for i in range(args.repeats)]
    finally:
        for p in loads:
            p.kill()
    a, b = statistics.median(alone), statistics.median(beside)
    res = {"command": "xbench " + args.args, "python": args.python, "machine_before": note, "cpus": os.cpu_count(),
           "load": f"{args.load} x {args.load_kind}", "alone_seconds": [round(x, 2) for x in alone],
           "beside_seconds": [round(x, 2) for x in beside], "median_alone": round(a, 2),
           "median_beside": round(b, 2), "ratio": round(b / a, 2)}
    print(f"{res['command']}: alone median {a:.1f} s, beside {res['load']} median {b:.1f} s: x{b / a:.2f}")
    if args.json:
        write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
