"""Batched explaining and max-sensitivity: one-at-a-time (before / default) against batched (opt-in)
and against Quantus 0.6's own ``MaxSensitivity`` on the same work.

Procedure (task ``synthetic-shapes``, its small CNN, the first ``--n`` = 64 test images):

1. ``load_task`` (trains or loads the model: set ``XBENCH_CACHE`` to reuse it), ``targets_for``.
   Not timed.
2. For each of ``--repeats`` rounds, in turn (interleaved, so that load from other processes on a
   shared machine spreads over all variants alike):

   - *explain*: ``Explainer.explain`` of ``--explainer`` (default ``saliency``) over the n images;
   - *max_sensitivity*: xbench's ``max_sensitivity`` (5 samples, radius 0.05, prediction kept),
     scored through ``score_explanations`` (a fresh context each time: nothing memoised);

   for three variants of the explainer:

   - ``before``: every call inside ``isolated_global_rng`` (what every gradient explainer did
     before the deterministic ones stopped forking the global RNG), one example per call;
   - ``default``: today's default (no fork for deterministic methods), one example per call;
     its numbers are checked to equal ``before``'s exactly;
   - ``batched``: ``batch_examples = --batch`` (opt-in): one captum call per batch of examples, and
     the stability metric's noisy copies of all examples re-explained in such batches; the largest
     difference to the default's numbers is printed (batched kernels may change the last bits);

   - and ``quantus``: ``quantus.MaxSensitivity(nr_samples=5, lower_bound=0.05 · the images' median
     value range, its default uniform noise, return_nan_when_prediction_changes=True)`` with
     ``quantus.explain`` (captum ``Saliency``) on the same module, images, targets and attributions
     (Quantus's own loop: one batched explain call per sample).

The minimum over rounds is reported (the median too), of wall-clock and of process CPU time (the
latter is steadier on a machine other processes load), with the ratios of the minima. ``--no-quantus``
skips Quantus (importing it takes seconds). The torch thread count is left at its default unless
``--threads`` is given (printed either way; ``--threads 1`` gives the steadiest CPU times).

Run from the repository root::

    XBENCH_CACHE=/tmp/xb python benchmarks/bench_explain_batch.py
    XBENCH_CACHE=/tmp/xb python benchmarks/bench_explain_batch.py --explainer input_x_gradient --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="synthetic-shapes")
    p.add_argument("--n", type=int, default=64, help="examples (default 64)")
    p.add_argument("--explainer", default="saliency", help="saliency, input_x_gradient or integrated_gradients")
    p.add_argument("--batch", type=int, default=64, help="batch_examples of the batched variant (default 64)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-quantus", action="store_true", help="skip Quantus's MaxSensitivity")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    return p.parse_args(argv)


def timed(fn: Callable[[], Any]) -> tuple[tuple[float, float], Any]:
    """((wall seconds, process CPU seconds), fn())."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - t0, time.process_time() - c0), out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import xbench.metrics.stability  # noqa: F401  (registers max_sensitivity)
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.metrics.scoring import score_explanations
    from xbench.tasks.catalogue import task_specs
    from xbench.tasks.task import load_task, targets_for

    task = load_task(task_specs()[args.task], n=args.n)
    targets, _, _ = targets_for(task, task.engine())
    n = len(task.examples)
    cls = Explainer.registry.get(args.explainer)
    variants = {"before": cls(), "default": cls(), "batched": cls(batch_examples=args.batch)}
    variants["before"].draws_global_rng = True  # the fork every gradient explainer used to take

    def explain(x):
        return x.explain(task, task.examples, targets.tolist(), 0)

    def max_sens(x, expl):
        (planned,) = score_explanations(task, [expl], [Metric.registry.get("max_sensitivity")()], targets, 0, [x])
        return planned.results[0].values

    quantus_run = None if args.no_quantus else quantus_setup(task, targets, args.explainer)
    times: dict[str, list[tuple[float, float]]] = {}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for _ in range(args.repeats):
        for name, x in variants.items():
            t, expl = timed(lambda: explain(x))
            times.setdefault(f"explain {name}", []).append(t)
            t, values = timed(lambda: max_sens(x, expl))
            times.setdefault(f"max_sensitivity {name}", []).append(t)
            out[name] = (np.concatenate(expl.attributions), values)
        if quantus_run is not None:
            t, q = timed(quantus_run)
            times.setdefault("max_sensitivity quantus", []).append(t)

    print(f"task {args.task}, {n} examples, explainer {args.explainer}, batch_examples {args.batch}, "
          f"torch threads {torch.get_num_threads()}, {args.repeats} rounds")
    print(f"  {'seconds':32s} {'wall min':>9s} {'median':>9s} {'cpu min':>9s} {'median':>9s}")
    for k, ts in times.items():
        w, c = [t[0] for t in ts], [t[1] for t in ts]
        print(f"  {k:32s} {min(w):9.3f} {statistics.median(w):9.3f} {min(c):9.3f} {statistics.median(c):9.3f}")
    for j, clock in ((0, "wall"), (1, "cpu")):
        best = {k: min(t[j] for t in v) for k, v in times.items()}
        for what in ("explain", "max_sensitivity"):
            b, d, z = best[f"{what} before"], best[f"{what} default"], best[f"{what} batched"]
            print(f"  {clock} {what}: before/default {b / d:.2f}x, default/batched {d / z:.2f}x, "
                  f"before/batched {b / z:.2f}x")
        if "max_sensitivity quantus" in best:
            q = best["max_sensitivity quantus"]
            print(f"  {clock} max_sensitivity: quantus/before {q / best['max_sensitivity before']:.2f}x, "
                  f"quantus/default {q / best['max_sensitivity default']:.2f}x, "
                  f"quantus/batched {q / best['max_sensitivity batched']:.2f}x (> 1: xbench is faster)")
    a0, v0 = out["before"]
    a1, v1 = out["default"]
    a2, v2 = out["batched"]
    print(f"  default == before, bit for bit: attributions {np.array_equal(a0, a1)}, "
          f"max_sensitivity {np.array_equal(v0, v1, equal_nan=True)}")
    print(f"  batched vs default: attributions equal {np.array_equal(a1, a2)} (max |diff| "
          f"{float(np.max(np.abs(a1 - a2))):.3g}), max_sensitivity equal {np.array_equal(v1, v2, equal_nan=True)} "
          f"(max |diff| {float(np.nanmax(np.abs(v1 - v2))):.3g})")


def quantus_setup(task: Any, targets: np.ndarray, explainer: str) -> Callable[[], Any] | None:
    """Quantus's MaxSensitivity on the task's module and images (the same work as xbench's)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import quantus
    except Exception as e:  # noqa: BLE001 - report and go on without it
        print(f"quantus unavailable ({type(e).__name__}: {e}); skipped")
        return None
    method = {"saliency": "Saliency", "input_x_gradient": "InputXGradient",
              "integrated_gradients": "IntegratedGradients"}[explainer]
    module = task.module
    x = np.stack([ex.x for ex in task.examples]).astype(np.float32)
    y = np.asarray(targets, dtype=np.int64)
    radius = 0.05 * float(np.median([ex.x.max() - ex.x.min() for ex in task.examples]))
    kwargs = {"method": method}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = quantus.explain(module, x, y, **kwargs)

    def run() -> Any:
        metric = quantus.MaxSensitivity(nr_samples=5, lower_bound=radius,  # Quantus's default uniform noise
                                        norm_numerator=quantus.norm_func.fro_norm,
                                        norm_denominator=quantus.norm_func.fro_norm,
                                        similarity_func=quantus.similarity_func.difference,
                                        return_nan_when_prediction_changes=True, disable_warnings=True,
                                        display_progressbar=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return metric(model=module, x_batch=x, y_batch=y, a_batch=a, channel_first=True,
                          explain_func=quantus.explain, explain_func_kwargs=kwargs, device="cpu", batch_size=len(x))

    return run


if __name__ == "__main__":
    main()
