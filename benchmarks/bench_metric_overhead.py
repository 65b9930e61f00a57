"""Metric overhead: the metric phase's time over the time of the bare forward passes it needs.

Procedure (one task, default ``synthetic-sentiment``):

1. ``load_task`` (trains or loads the model), ``targets_for`` on a fresh
   :class:`~xbench.features.engine.PerturbationEngine`, then explanations for the chosen
   explainers through ``Runner.explain``. Not timed. By default ``XBENCH_CACHE`` is a
   fresh temporary directory (the model is trained, ~15 s, and nothing is left in the
   user's cache); ``--warm-cache`` uses ``$XBENCH_CACHE`` or ``~/.cache/xbench``, reading
   (and adding) the trained model and attributions there as ``xbench run`` does.
2. For each repeat, on a fresh engine primed (untimed) by ``targets_for`` as the
   runner primes it, the metric phase is timed as ``Runner.run_task`` / ``run_units``
   runs it:

   - *plan*: ``Scoring.plan`` per explainer, with fresh metric instances (it builds the
     ``Context``, which resubmits the full inputs, and calls ``m.plan(ctx)`` for every metric of
     the suite that applies to the explainer), and the runner's NaN check (``ctx.valid``);
   - *engine.run*: the one deduplicated, length-sorted, batched pass;
   - *score*: ``Scoring.score`` per explainer (``m.score(ctx, states)`` for every metric).

   As in the runner, explainers that do not apply to the task (``grad_cam`` on a text model) are
   left out, and so are metrics that apply to none of the explainers (the plausibility metrics on a
   task without rationales); both are listed.

3. Then, for exactly the unique inputs that timed ``engine.run`` evaluated (same
   length-sorted order, same batch size), the padded ``input_ids`` /
   ``attention_mask`` (and ``token_type_ids`` where the rows carry them, as the
   adapter passes them) tensors are built *before* the timer starts, and only the
   bare ``model(...)`` calls are timed under ``torch.no_grad()``.

The ratio is ``(plan + engine.run + score) / bare forward``; the median over
``--repeats`` is reported, as are the per-repeat figures, a per-metric breakdown of
plan and score time, and a check that the bare outputs equal the engine's. The
torch thread count is left at its default.

Run from the repository root::

    /work/venv/bin/python benchmarks/bench_metric_overhead.py              # all explainers, suite n
    /work/venv/bin/python benchmarks/bench_metric_overhead.py --warm-cache # reuse model + attributions
    /work/venv/bin/python benchmarks/bench_metric_overhead.py --quick      # cheap explainers only
    /work/venv/bin/python benchmarks/bench_metric_overhead.py --explainers saliency,occlusion --n 100
"""
from __future__ import annotations

import argparse
import inspect
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUICK = "random,saliency,occlusion,attention"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="synthetic-sentiment", help="task name or YAML path")
    p.add_argument("--suite", default="default", help="metric suite (metrics, n, explainer params)")
    p.add_argument("--n", type=int, default=None, help="examples (default: the suite's n, else all)")
    p.add_argument("--explainers", default=None,
                   help="comma-separated explainer names (default: the suite's explainers, else all registered)")
    p.add_argument("--quick", action="store_true", help=f"cheap explainers only: {QUICK}")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warm-cache", action="store_true",
                   help="reuse $XBENCH_CACHE or ~/.cache/xbench (model, attributions) instead of a fresh "
                        "temporary cache")
    p.add_argument("--no-attr-cache", action="store_true",
                   help="with --warm-cache: recompute attributions instead of reading/writing cached ones")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


from _machine import OtherCpu, load_note, other_note, write_json  # noqa: E402  (benchmarks/ is on sys.path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = load_note()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tmp_cache = None
    if not args.warm_cache:
        tmp_cache = tempfile.mkdtemp(prefix="xbench-bench-cache-")
        os.environ["XBENCH_CACHE"] = tmp_cache  # before any xbench import

    import numpy as np
    import torch
    from tabulate import tabulate

    from xbench.core.cache import cache_dir
    from xbench.run.config import load_suite
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.metrics.scoring import Scoring
    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner
    from xbench.tasks.task import targets_for, weights_hash
    from xbench.tasks.task import load_task
    from xbench.tasks.catalogue import resolve_task

    suite = load_suite(args.suite)
    n = args.n or suite.n
    spec = resolve_task(args.task)
    explainers = suite.explainers or [(name, {}) for name in Explainer.registry.names()]
    names = QUICK if args.quick and not args.explainers else args.explainers
    if names:
        by_name = dict(explainers)
        explainers = [(e.strip(), by_name.get(e.strip(), {})) for e in names.split(",") if e.strip()]
        for e, _ in explainers:
            Explainer.registry.get(e)
    metric_objs = [Metric.registry.get(m)(**p) for m, p in suite.metrics]

    # -- setup (untimed) ------------------------------------------------------------------
    t0 = time.perf_counter()
    task = load_task(spec, n)
    load_s = time.perf_counter() - t0
    model = task.model
    # as the runner does: an explainer that does not apply to the task (grad_cam on a text model)
    # is left out, and each explainer is scored only with the metrics that apply to it
    objs = {name: Explainer.registry.get(name)(**params) for name, params in explainers}
    not_applicable = [name for name, _ in explainers if not objs[name].applies_to(task)]
    explainers = [(name, params) for name, params in explainers if name not in not_applicable]
    applicable = {m.name for m in metric_objs for name, _ in explainers if m.applies_to(task, objs[name])}
    skipped = [m.name for m in metric_objs if m.name not in applicable]
    metric_objs = [m for m in metric_objs if m.name in applicable]
    targets, _, _ = targets_for(task, task.engine())
    model_hash = weights_hash(model.model)
    cfg = RunConfig([spec], explainers, suite.metrics, n=n, seed=args.seed, suite=suite.name,
                    cache=not args.no_attr_cache)
    scratch = tempfile.mkdtemp(prefix="xbench-bench-scratch-")
    runner = Runner(cfg, Path(scratch), progress=False, log=lambda msg: None)
    # Runner.explain gained a ``seed`` argument in later versions; pass it where it exists
    seed_kw = {"seed": args.seed} if "seed" in inspect.signature(Runner.explain).parameters else {}
    expls = []
    t0 = time.perf_counter()
    for name, _ in explainers:
        expls.append(runner.explain(task, objs[name], targets, model_hash, **seed_kw))
    explain_s = time.perf_counter() - t0
    shutil.rmtree(scratch, ignore_errors=True)

    # -- timed repeats --------------------------------------------------------------------
    reps: list[dict[str, Any]] = []
    per_metric: list[dict[str, dict[str, float]]] = []
    check = None
    other = OtherCpu().start()
    for r in range(args.repeats):
        engine = task.engine()
        targets_for(task, engine)  # as the runner does before phase 1 (run_task / run_units)
        start, f_before = engine.n_unique, model.n_forward
        req_before = engine.n_requested
        pm = {m.name: {"plan": 0.0, "score": 0.0} for m in metric_objs}
        pm["(Context + valid)"] = {"plan": 0.0, "score": 0.0}

        # the runner's metric phase (Runner.run_task): Scoring.plan per explainer with fresh metric
        # instances (metrics keep per-run state), the NaN check, one engine pass, Scoring.score
        scoring = Scoring(task, targets, engine, args.seed)
        t_plan0 = time.perf_counter()
        planned = []
        for (name, _), expl in zip(explainers, expls):
            a = time.perf_counter()
            plan = scoring.plan(expl, [type(m)(**m.p) for m in metric_objs], objs[name])
            plan.context.valid  # the runner's _report_bad
            spent = time.perf_counter() - a
            for m_name, meter in plan.meters.items():
                pm[m_name]["plan"] += meter.seconds
                spent -= meter.seconds
            pm["(Context + valid)"]["plan"] += spent
            planned.append(plan)
        t_run0 = time.perf_counter()
        engine.run()
        t_score0 = time.perf_counter()
        for plan in planned:
            before = {m_name: meter.seconds for m_name, meter in plan.meters.items()}
            scoring.score(plan)
            for m_name, meter in plan.meters.items():
                pm[m_name]["score"] += meter.seconds - before[m_name]
        t_end = time.perf_counter()

        # bare forward passes over the same unique inputs, same order and batches
        rows = engine._rows
        order = sorted(range(start, len(rows)), key=lambda h: len(rows[h][0]))
        bs = engine.batch_size
        batches = []
        for b in range(0, len(order), bs):
            idx = order[b:b + bs]
            seqs = [rows[h] for h in idx]
            L = max(len(s[0]) for s in seqs)
            ids = np.full((len(seqs), L), model.pad_id, dtype=np.int64)
            att = np.zeros((len(seqs), L), dtype=np.int64)
            tt = np.zeros((len(seqs), L), dtype=np.int64) if seqs[0][2] is not None else None
            for i, (x, mk, t) in enumerate(seqs):
                ids[i, :len(x)] = x
                att[i, :len(x)] = mk
                if tt is not None:
                    tt[i, :len(x)] = t
            kw = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(att)}
            if tt is not None:
                kw["token_type_ids"] = torch.from_numpy(tt)
            batches.append((idx, kw))
        net = model.model
        outs = []
        with torch.no_grad():
            t_f0 = time.perf_counter()
            for _, kw in batches:
                outs.append(net(**kw).logits)
            t_f1 = time.perf_counter()
        if r == args.repeats - 1 and batches:  # outputs must match the engine's (untimed)
            diff = max(float(np.abs(torch.softmax(o.float(), -1).numpy() - engine._probs[idx]).max())
                       for (idx, _), o in zip(batches, outs))
            check = diff

        rep = {"requested": engine.n_requested - req_before, "unique": engine.n_unique - start,
               "adapter_forward_rows": model.n_forward - f_before, "batches": len(batches), "batch_size": bs,
               "plan_s": t_run0 - t_plan0, "engine_run_s": t_score0 - t_run0, "score_s": t_end - t_score0,
               "metric_s": t_end - t_plan0, "bare_forward_s": t_f1 - t_f0}
        rep["ratio"] = rep["metric_s"] / rep["bare_forward_s"] if rep["bare_forward_s"] > 0 else float("nan")
        rep["engine_run_over_bare"] = rep["engine_run_s"] / rep["bare_forward_s"] if rep["bare_forward_s"] > 0 \
            else float("nan")
        reps.append(rep)
        per_metric.append(pm)

    other_share = other.share()
    keys = ["plan_s", "engine_run_s", "score_s", "metric_s", "bare_forward_s", "ratio", "engine_run_over_bare"]
    med = {k: statistics.median(rep[k] for rep in reps) for k in keys}
    med_pm = {name: {ph: statistics.median(pm[name][ph] for pm in per_metric) for ph in ("plan", "score")}
              for name in per_metric[0]}
    result = {
        "task": spec.name, "suite": suite.name,
        "cache": f"warm ({cache_dir()})" if args.warm_cache else "cold (fresh temporary XBENCH_CACHE)", "n_examples": len(task.examples), "seed": args.seed,
        "explainers": [e for e, _ in explainers], "explainers_not_applicable": not_applicable,
        "metrics": [m.name for m in metric_objs], "skipped_metrics": skipped, "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_task_seconds": round(load_s, 3), "explain_seconds": round(explain_s, 3),
        "attribution_cache": [e.meta.get("cache") for e in expls],
        "requested_inputs": reps[0]["requested"], "unique_inputs": reps[0]["unique"],
        "adapter_forward_rows": reps[0]["adapter_forward_rows"], "batches": reps[0]["batches"],
        "batch_size": reps[0]["batch_size"], "repeats": reps, "median": med, "per_metric_median": med_pm,
        "max_abs_prob_diff_bare_vs_engine": check, "machine_before": load_before,
        "other_processes_cpu_share_during_timing": other_share,
    }

    # -- report ---------------------------------------------------------------------------
    print(f"xbench metric-overhead benchmark: task={spec.name} suite={suite.name} n={len(task.examples)} "
          f"explainers={len(explainers)} metrics={len(metric_objs)} cpus={os.cpu_count()} "
          f"torch_threads={torch.get_num_threads()}")
    print(f"machine before start: {load_before}; other processes during the timed repeats: "
          f"{other_note(other_share)}")
    print(f"cache: {result['cache']}")
    if not_applicable or skipped:
        print(f"left out as the runner leaves them out: explainers not applicable to the task: "
              f"{', '.join(not_applicable) or 'none'}; metrics applicable to no explainer: {', '.join(skipped) or 'none'}")
    print(f"setup (untimed): load_task {load_s:.2f} s, explanations {explain_s:.2f} s "
          f"(attribution cache: {', '.join(sorted(set(map(str, result['attribution_cache']))))})")
    print(f"inputs: {result['requested_inputs']} requested by the metric phase, {result['unique_inputs']} unique "
          f"evaluated by engine.run ({result['batches']} batches of <= {result['batch_size']}); "
          f"adapter counted {result['adapter_forward_rows']} forward rows")
    rows = [[f"repeat {i + 1}"] + [f"{rep[k]:.3f}" for k in keys] for i, rep in enumerate(reps)]
    rows.append(["MEDIAN"] + [f"{med[k]:.3f}" for k in keys])
    print(tabulate(rows, headers=["", "plan s", "engine.run s", "score s", "metric s", "bare fwd s",
                                  "metric/bare", "run/bare"], tablefmt="simple"))
    print(f"\nratio metric_seconds / bare_forward_seconds (median of {args.repeats}): {med['ratio']:.2f}x "
          f"(target < 1.3x)")
    print(f"bare outputs vs engine probabilities: max |diff| = {check:.2e}" if check is not None else "")
    print("\nper-metric median seconds (summed over explainers)")
    print(tabulate([[name, f"{v['plan']:.3f}", f"{v['score']:.3f}"] for name, v in med_pm.items()],
                   headers=["metric", "plan s", "score s"], tablefmt="simple"))
    if args.json:
        write_json(args.json, result)
    if tmp_cache:
        shutil.rmtree(tmp_cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
