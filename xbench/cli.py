"""Command line: ``xbench list|run|leaderboard``.

Bad input (unknown names, malformed files, NaN attributions, empty rationales) is
reported as one line on stderr with exit code 2 and no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from xbench.core.errors import XBenchError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise XBenchError(message)


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def cmd_list(args: argparse.Namespace) -> int:
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.tasks.catalogue import task_specs

    rows: list[dict[str, Any]]
    if args.what == "tasks":
        from xbench.tasks.task import sources

        rows = []
        for s in task_specs().values():
            ds, ms = sources(s)
            why = None
            if args.check:
                try:
                    why = ds.unavailable() or ms.unavailable()
                except XBenchError as e:
                    why = str(e)
            rows.append({"name": s.name, "modality": s.modality, "size": ds.size(),
                         "rationale": s.rationale, "model": ms.origin(), "default": s.default,
                         "granularity": s.granularity if s.modality == "text" else None,
                         "replacement": s.replacement, "dataset": s.dataset.source,
                         "model_source": s.model.source, "offline": ds.offline and ms.offline,
                         **({"runs_here": why or "yes"} if args.check else {}),
                         "description": s.description, "path": s.path})
    elif args.what == "explainers":
        rows = [{"name": c.name, "family": c.family, "needs": sorted(c.needs), "stochastic": c.stochastic,
                 "params": c.params, "description": c.describe()} for c in Explainer.registry]
    else:
        rows = [{"name": c.name, "family": c.family, "direction": c.direction, "range": list(c.range),
                 "ideal": c.ideal, "needs": sorted(c.needs), "params": c.params, "formula": c.formula,
                 "description": c.describe()} for c in Metric.registry]
        # name prefixes (``quantus:<Name>``): one row each, not every name the factory can make
        rows += [{"name": f"{p}:<Name>", "family": "(per metric)", "direction": "(per metric)", "range": [],
                  "ideal": None, "needs": [], "params": {}, "formula": "", "description": d}
                 for p, d in Metric.registry.prefixes().items()]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif args.markdown and args.into:
        write_generated(Path(args.into), args.what)
        print(f"updated the generated table in {args.into}")
    elif args.markdown:
        print(registry_markdown(args.what), end="")
    else:
        from tabulate import tabulate

        keep = {"tasks": ["name", "modality", "size", "rationale", "model", "replacement", "default"]
                + (["runs_here"] if getattr(args, "check", False) else []),
                "explainers": ["name", "family", "needs", "stochastic", "description"],
                "metrics": ["name", "family", "direction", "range", "description"]}[args.what]
        print(tabulate([[_cell(r[k]) for k in keep] for r in rows], headers=keep, tablefmt="simple"))
    return 0


def _num(v: Any) -> str:
    return "∞" if v == float("inf") else "−∞" if v == float("-inf") else f"{v:g}"


def registry_markdown(what: str) -> str:
    """The reference table of xbench's own metrics or explainers, from their class metadata (what
    docs/metrics.md and docs/explainers.md hold; ``tests/test_docs.py`` checks they are current)."""
    from tabulate import tabulate

    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric

    def esc(t: str) -> str:
        return str(t).replace("|", "\\|").replace("\n", " ")

    def what_it_is(c: Any) -> str:
        """The docstring's first paragraph, on one line."""
        return esc(" ".join((c.__doc__ or "").strip().split("\n\n")[0].split()))

    if what == "metrics":
        rows = [[f"`{c.name}`", c.family, esc(c.formula), "↑ higher" if c.direction == "higher" else "↓ lower",
                 f"[{_num(c.range[0])}, {_num(c.range[1])}]", _num(c.ideal), what_it_is(c)]
                for c in Metric.registry if c.__module__.startswith("xbench.")]
        head = ["metric", "family", "formula", "better", "range", "ideal", "what it is"]
    elif what == "explainers":
        rows = [[f"`{c.name}`", c.family, ", ".join(sorted(c.needs)) or "–", c.space, "yes" if c.stochastic else "no",
                 what_it_is(c)] for c in Explainer.registry if c.__module__.startswith("xbench.")]
        head = ["explainer", "family", "needs", "works on", "stochastic", "what it is"]
    else:
        raise XBenchError("--markdown lists metrics or explainers")
    return tabulate(rows, headers=head, tablefmt="github", disable_numparse=True) + "\n"


def write_generated(page: Path, what: str) -> None:
    """Replace the block between ``<!-- generated by: xbench list <what> --markdown -->`` and
    ``<!-- end generated -->`` in ``page`` with the current table."""
    from xbench.core.io import atomic_write_text

    text = page.read_text(encoding="utf-8")
    start = f"<!-- generated by: xbench list {what} --markdown -->"
    if start not in text or "<!-- end generated -->" not in text:
        raise XBenchError(f"{page}: has no '{start}' ... '<!-- end generated -->' block")
    i = text.index(start) + len(start)
    j = text.index("<!-- end generated -->", i)
    atomic_write_text(page, text[:i] + "\n\n" + registry_markdown(what) + "\n" + text[j:])


def _cell(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if not all(isinstance(x, (int, float)) for x in v) else \
            "[" + ", ".join(f"{x:g}" for x in v) + "]"
    return str(v)


def config_from_args(args: argparse.Namespace):
    """``xbench run``'s arguments -> a :class:`~xbench.run.config.RunConfig` (through the one builder)."""
    from xbench.run.config import build_config

    return build_config(args.tasks or (), args.suite, _names(args.explainers), _names(args.metrics), n=args.n,
                        seed=args.seed, cache=not args.no_cache, runtime=runtime_from_args(args),
                        chunk=getattr(args, "chunk", None))


def runtime_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``--device``, ``--dtype``, ``--threads``, ``--batch-size`` as given (unset ones left out)."""
    keys = {"device": "device", "dtype": "dtype", "threads": "threads", "batch_size": "batch_size"}
    return {k: getattr(args, a) for k, a in keys.items() if getattr(args, a, None) is not None}


def add_runtime_arguments(p: argparse.ArgumentParser) -> None:
    """Where and how models run (recorded in the manifest; see xbench/core/device.py)."""
    g = p.add_argument_group("execution")
    g.add_argument("--device", help="auto (default: the first GPU if any, else the CPU), cpu, cuda or cuda:N")
    g.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                   help="model precision (default: the model's own, float32; reduced precision changes values)")
    g.add_argument("--threads", type=int, help="CPU threads (default: the cores this process may use)")
    g.add_argument("--batch-size", type=int, help="rows per forward batch (default: the adapter's on the CPU, "
                                                  "sized from free memory on a GPU)")


def backend_from_args(args: argparse.Namespace) -> object | None:
    """The backend ``--backend`` names (None: this process), with its cluster options."""
    ray_only = [f for f in ("address", "workers", "cpus_per_worker", "retries") if getattr(args, f, None) is not None]
    if getattr(args, "backend", "local") != "ray":
        if ray_only:
            raise XBenchError(f"--{ray_only[0].replace('_', '-')} applies to --backend ray only")
        return None
    from xbench.run.backends import RayBackend

    return RayBackend(address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker or 1,
                      retries=3 if args.retries is None else args.retries)


def add_backend_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("backend (where partitions run; docs/performance.md)")
    g.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local (this process, the default) or ray (the workers of a Ray cluster)")
    g.add_argument("--address", help="ray: an existing cluster's head (host:port, or auto); default: start a "
                                     "local one on this machine's cores")
    g.add_argument("--workers", type=int, help="ray: worker actors (default: the cluster's CPUs / --cpus-per-worker)")
    g.add_argument("--cpus-per-worker", type=int, help="ray: CPUs (and torch threads) per worker (default 1)")
    g.add_argument("--retries", type=int, help="ray: runs of a partition again after its worker died (default 3)")


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise XBenchError(f"--shard {value!r}: expected K/N, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise XBenchError(f"--shard {value}: need 1 <= K <= N")
    return k, n


def cmd_run(args: argparse.Namespace) -> int:
    from xbench.run.runner import Runner, default_out

    progress = not args.no_progress and sys.stderr.isatty()
    if args.resume:
        from xbench.run.repro import config_of

        given = [f for f in ("tasks", "explainers", "metrics", "n", "out", "shard", "overwrite", "chunk")
                 if getattr(args, f)]
        if given or args.suite != "default" or args.seed != 0:
            raise XBenchError("--resume takes its config from the run's manifest; drop "
                              + ", ".join(f"--{f}" if f != "tasks" else "TASK" for f in given or ["suite/seed"]))
        out = Path(args.resume)
        cfg = config_of(out)
        cfg.cache = not args.no_cache
        cfg.runtime.update(runtime_from_args(args))
        runner = Runner(cfg, out, progress=progress, resume=True, backend=backend_from_args(args))
    else:
        cfg = config_from_args(args)
        out = Path(args.out) if args.out else default_out(cfg.suite)
        runner = Runner(cfg, out, progress=progress, shard=_shard(args.shard), overwrite=args.overwrite,
                        backend=backend_from_args(args))
    runner.run()
    if runner.shard is not None:
        print(f"wrote shard {args.shard} to {out}/; put the shards together with `xbench merge OUT SHARD_DIR...`")
        return 0
    print((out / "leaderboard.md").read_text())
    print(f"wrote {out}/ (leaderboard.md, leaderboard.json, leaderboard.csv, scores.csv, manifest.json)")
    if runner.failures and not args.allow_failures:
        print(f"xbench: error: {len(runner.failures)} problem(s) with the input; results are written, and "
              f"failed examples are counted in n_failed (see above; --allow-failures exits 0)", file=sys.stderr)
        return 2
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from xbench.report.tables import to_markdown
    from xbench.results.leaderboard import load_leaderboard

    run = Path(args.run_dir)
    if not (run / "leaderboard.json").exists():
        raise XBenchError(f"{run}: not a run directory (no leaderboard.json)")
    lb = load_leaderboard(run)
    if args.plots:
        from xbench.report.plots import write_plots

        files = write_plots(run)
        print(f"wrote {len(files)} plot files under {run / 'plots'}/", file=sys.stderr)
    if args.format == "latex":
        from xbench.report.tables import to_latex

        print(to_latex(lb), end="")
    elif args.format == "json":
        print((run / "leaderboard.json").read_text(), end="")
    elif args.format == "csv":
        print(lb.to_csv(index=False), end="")
    else:
        from xbench.results.rundir import RunDir

        print(to_markdown(lb, RunDir(run).manifest(required=False) or None), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from xbench.report.html import write_report

    run = Path(args.run_dir)
    if not (run / "leaderboard.json").exists():
        raise XBenchError(f"{run}: not a run directory (no leaderboard.json)")
    if args.examples < 0:
        raise XBenchError("--examples must be >= 0")
    out = Path(args.html) if args.html else run / "report.html"
    write_report(run, out, args.examples, plots=not args.no_plots)
    print(f"wrote {out}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from xbench.run.publish import PUBLISHED, publish

    out = Path(args.out) if args.out else PUBLISHED / args.suite
    progress = not args.no_progress and sys.stderr.isatty()
    out, failures = publish(out, args.suite, args.seed, args.examples, progress, runtime=runtime_from_args(args))
    print((out / "leaderboard.md").read_text())
    print(f"published {out}/ (leaderboard.md, leaderboard.json, report.html, plots/, manifest.json)")
    if failures:
        print(f"xbench: error: {len(failures)} problem(s) with the input (see above)", file=sys.stderr)
        return 2
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Re-run a run's manifest config into a new directory and compare: exit 0 identical (or within
    --tolerance), 1 when some scores differ beyond it, 2 on bad input."""
    from xbench.run.repro import reproduce
    from xbench.run.runner import default_out

    out = Path(args.out) if args.out else default_out("reproduce")
    if args.tolerance < 0:
        raise XBenchError("--tolerance must be >= 0")
    bad, totals = reproduce(Path(args.run_dir), out, args.tolerance, progress=not args.no_progress and sys.stderr.isatty(),
                            runtime=runtime_from_args(args))
    from tabulate import tabulate

    for task, t in totals["tasks"].items():
        print(f"{task}: model weights {'same' if t['weights_same'] else 'DIFFERENT'}, data slice "
              f"{'same' if t['data_same'] else 'DIFFERENT'}")
    if not totals["versions_same"]:
        print("note: library versions differ from the original run's (see both manifests)")
    left = ", ".join(totals["left_out_metrics"])
    if totals["identical"]:
        print(f"identical: {totals['compared']} per-example scores match bit for bit (wall-clock metric left out: "
              f"{left}); new run in {out}/")
        return 0
    print(tabulate(bad, headers="keys", tablefmt="github", showindex=False))
    verdict = "within tolerance" if totals["within_tolerance"] else "DIFFERENT"
    print(f"{verdict}: {totals['differ']} of {totals['compared']} per-example scores differ, {totals['beyond']} by more "
          f"than the tolerance {args.tolerance:g} (absolute); {totals['only_original']} only in the original, "
          f"{totals['only_new']} only in the new run ({left} left out); new run in {out}/")
    return 0 if totals["within_tolerance"] else 1


def cmd_merge(args: argparse.Namespace) -> int:
    from xbench.run.repro import merge

    out = merge(Path(args.out), [Path(s) for s in args.shards])
    print(f"merged {len(args.shards)} shard(s) into {out}/")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Regression gate and quality contracts (:mod:`xbench.gate.check`): exit 0 pass, 1 fail, 2 bad input."""
    from xbench.gate.check import cli

    return cli(args)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="xbench", description="Benchmark explanation methods: faithfulness, plausibility, cost.")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.required = True
    pl = sub.add_parser("list", help="list tasks, explainers or metrics")
    pl.add_argument("what", choices=["tasks", "explainers", "metrics"])
    pl.add_argument("--json", action="store_true", help="machine-readable output")
    pl.add_argument("--markdown", action="store_true", help="metrics, explainers: the reference table of docs/")
    pl.add_argument("--into", metavar="PAGE", help="with --markdown: update the generated block of PAGE in place")
    pl.add_argument("--check", action="store_true",
                    help="tasks: also say whether each can run here (data present, network reachable)")
    pl.set_defaults(func=cmd_list)
    pr = sub.add_parser("run", help="run explainers x metrics on tasks (default: the offline catalogue)")
    pr.add_argument("tasks", nargs="*", help="task names or task YAML paths (default: tasks with default: true)")
    pr.add_argument("--explainers", help="comma-separated explainer names (default: the suite's, else all)")
    pr.add_argument("--metrics", help="comma-separated metric names (default: the suite's)")
    pr.add_argument("--suite", default="default", help="metric suite name in suites/ or a YAML path")
    pr.add_argument("--n", type=int, help="examples per task (default: the suite's n, else all)")
    pr.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    pr.add_argument("--out", help="run directory (default runs/<suite>-<time>)")
    pr.add_argument("--no-cache", action="store_true", help="recompute attributions instead of reading the cache")
    pr.add_argument("--no-progress", action="store_true", help="no progress bars")
    pr.add_argument("--allow-failures", action="store_true", help="exit 0 even if some examples failed")
    pr.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run (config from its manifest)")
    pr.add_argument("--overwrite", action="store_true",
                    help="replace the run in --out (written beside it, swapped in only when finished)")
    pr.add_argument("--shard", metavar="K/N", help="run only partitions K, K+N, ... (1-based) of the run; then "
                                                   "xbench merge")
    pr.add_argument("--chunk", type=int, metavar="N", help="split each task into partitions of N examples (the unit "
                                                           "of --shard and of the Ray backend; default: one per task)")
    add_runtime_arguments(pr)
    add_backend_arguments(pr)
    pr.set_defaults(func=cmd_run)
    pb = sub.add_parser("leaderboard", help="print a run's leaderboard")
    pb.add_argument("run_dir")
    pb.add_argument("--format", choices=["md", "csv", "json", "latex"], default="md")
    pb.add_argument("--plots", action="store_true",
                    help="also write plots (cost-quality, metric agreement, critical difference) to RUN_DIR/plots/")
    pb.add_argument("--no-progress", action="store_true", help="no progress bars")
    pb.set_defaults(func=cmd_leaderboard)
    pp = sub.add_parser("report", help="write a run's self-contained HTML report")
    pp.add_argument("run_dir")
    pp.add_argument("--html", help="output file (default RUN_DIR/report.html)")
    pp.add_argument("--examples", type=int, default=20, help="examples per task in the viewer (default 20)")
    pp.add_argument("--no-plots", action="store_true", help="leave the plots out (faster)")
    pp.add_argument("--no-progress", action="store_true", help="no progress bars")
    pp.set_defaults(func=cmd_report)
    pu = sub.add_parser("publish", help="regenerate a published leaderboard: run the suite on the default tasks, "
                                        "then write plots and the HTML report into leaderboards/<suite>/")
    pu.add_argument("--suite", default="default", help="metric suite (default: default)")
    pu.add_argument("--out", help="directory (default leaderboards/<suite>)")
    pu.add_argument("--seed", type=int, default=0, help="run seed (default 0)")
    pu.add_argument("--examples", type=int, default=20, help="examples per task in the report's viewer")
    pu.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_runtime_arguments(pu)
    pu.set_defaults(func=cmd_publish)
    pq = sub.add_parser("reproduce", help="re-run a run from its manifest alone into a new directory and compare "
                                          "the per-example scores (exit 1 when they differ beyond --tolerance)")
    pq.add_argument("run_dir")
    pq.add_argument("--out", help="directory of the new run (default runs/reproduce-<time>)")
    pq.add_argument("--tolerance", type=float, default=0.0, help="absolute difference allowed per score (default 0)")
    pq.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_runtime_arguments(pq)
    pq.set_defaults(func=cmd_reproduce)
    pm = sub.add_parser("merge", help="put the shards of a run (xbench run --shard K/N) together into one run")
    pm.add_argument("out", help="the merged run directory (new)")
    pm.add_argument("shards", nargs="+", help="shard run directories")
    pm.set_defaults(func=cmd_merge)
    from xbench.gate.check import add_arguments as check_arguments

    pc = sub.add_parser("check", help="regression gate for CI: compare a run with a baseline (paired Wilcoxon, "
                                      "Holm) and/or check a quality contract; exit 1 on a regression or violation")
    check_arguments(pc)
    pc.set_defaults(func=cmd_check)
    from xbench.report.eraser import add_arguments as eraser_arguments

    eraser_arguments(sub.add_parser("export-eraser", help="write a run's attributions as an ERASER results file"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # (OMP_WAIT_POLICY: set by ``import xbench``)
    try:
        args = parser().parse_args(argv)
        if getattr(args, "n", None) is not None and args.n <= 0:
            raise XBenchError("--n must be a positive integer")
        from xbench.core import progress

        progress.enabled(not getattr(args, "no_progress", False))  # on a terminal only
        return args.func(args)
    except XBenchError as e:
        print(f"xbench: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system said no: an --out that is a file, read-only, a full disk...
        where = e.filename if e.filename is not None else "file system"
        print(f"xbench: error: {where}: {e.strerror or e} (files already written are complete)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xbench: interrupted; files already written are complete", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
