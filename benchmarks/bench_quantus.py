"""xbench against Quantus 0.6 on an image classifier: the same work through both, in one process.

Model and inputs: the ``synthetic-shapes`` task (xbench's small CNN, trained and cached by xbench;
16x16 one-channel images, features are pixels, removed pixels become 0), its first ``--n`` (default
64) test images, target the predicted class. One batch of all of them everywhere.

Explaining: xbench ``saliency`` (captum ``Saliency``, ``abs: true``, summed over the one channel,
one example at a time, each inside xbench's per-example timing and peak-memory measure) against
``quantus.explain(method="Saliency")`` (captum ``Saliency``, abs, channel-summed, the whole
batch at once). Both maps are compared; the xbench maps are the explanations every metric below
scores, for every tool.

Metrics, with the same parameters on every side (``--steps``, ``--runs``, ``--samples``):

- PixelFlipping: Quantus ``PixelFlipping(features_in_step = F / steps, perturb_baseline = 0.0)``
  (softmax probabilities, its default) against xbench ``deletion_auc(steps)``: the same removals
  (top F / steps pixels at a time, set to 0). Their scalars differ by definition (Quantus: area
  under the ``steps`` points with unit spacing; xbench: area over x = k / F from k = 0), so the
  agreement is on the curves, point by point, and on Quantus's area computed from xbench's curve;
- FaithfulnessCorrelation: Quantus ``(nr_runs = runs, subset_size = ceil(0.2 F), perturb_baseline
  = 0.0)`` on logits (its default) against xbench ``faithfulness_correlation(n_samples = runs,
  subset_size = 0.2, output = logit)``. The random subsets are drawn differently (Quantus: numpy's
  global RNG; xbench: a generator per example), so the values agree only statistically;
- MaxSensitivity: Quantus ``(nr_samples = samples, lower_bound = r, return_nan_when_prediction_changes
  = True)`` with ``explain_func = quantus.explain`` (Saliency) against xbench ``max_sensitivity(radius
  = 0.05, n_samples = samples)``; xbench's noise is U[-0.05 (max - min), +0.05 (max - min)] of each
  image, Quantus takes one bound for the batch: r = 0.05 x the median (max - min) over the images.
  Random noise on both sides: statistical agreement only.

And xbench's Quantus bridge (``quantus:PixelFlipping`` etc., ``xbench.metrics.quantus_bridge``) with
the same Quantus parameters against Quantus alone: same attributions, and Quantus alone is run
inside the same seeded global RNG as the bridge's call, with the bridge's per-example normalisation
(``normalise_func_kwargs: {normalise_axes: [1, 2, 3]}``), so values should match to float precision;
the bridge's ``explain_func`` re-explains through xbench's explainer (per example), Quantus alone
through ``quantus.explain`` (one batch). The ratio bridge / Quantus is the bridge's overhead.

xbench runs its metrics through ``xbench.metrics.scoring.score_explanations`` (plan, one engine
pass, score). Timings are medians of ``--repeats`` (default 3), the sides alternating; ratios are
xbench / Quantus (below 1: xbench is faster).

Run from the repository root::

    python benchmarks/bench_quantus.py                                  # 64 images, 3 repeats
    python benchmarks/bench_quantus.py --n 32 --repeats 1 --json /tmp/bench-quantus.json
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from typing import Any, Callable


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="images (default 64)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    p.add_argument("--task", default="synthetic-shapes", help="image task (default synthetic-shapes)")
    p.add_argument("--steps", type=int, default=16, help="pixel-flipping steps (default 16: 16 pixels a step)")
    p.add_argument("--runs", type=int, default=32, help="faithfulness-correlation subsets (default 32)")
    p.add_argument("--samples", type=int, default=10, help="max-sensitivity noise samples (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    args = p.parse_args(argv)
    if args.n < 2 or args.repeats < 1:
        p.error("--n needs >= 2 and --repeats >= 1")
    return args


from _machine import OtherCpu, load_note, other_note, write_json  # noqa: E402  (benchmarks/ is on sys.path)


def agreement(a: Any, b: Any) -> dict[str, float]:
    """max |a - b| over all values, and Pearson r (pairs with a NaN left out)."""
    import numpy as np

    x, y = np.ravel(np.asarray(a, dtype=np.float64)), np.ravel(np.asarray(b, dtype=np.float64))
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 and x.std() > 0 and y.std() > 0 else float("nan")
    return {"max_abs_diff": float(np.abs(x - y).max()) if len(x) else float("nan"), "pearson": r,
            "max_abs_value": float(max(np.abs(x).max(), np.abs(y).max())) if len(x) else float("nan"),
            "n_values": int(len(x)), "n_left_out": int((~ok).sum())}


def timed(fns: dict[str, Callable[[], Any]], repeats: int
          ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Any]]:
    """Each function ``repeats`` times, rotating which runs first: wall seconds, this process's CPU
    seconds (less sensitive to other processes on a shared machine) and the last results."""
    secs: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, Any] = {}
    names = list(fns)
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            out[k] = fns[k]()
            secs[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return secs, cpu, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = load_note()

    import numpy as np

    import xbench  # noqa: F401  (first, as a user would: sets OMP_WAIT_POLICY before torch loads)
    import torch
    from scipy.integrate import trapezoid
    from tabulate import tabulate

    from xbench.core.seeding import derive_seed, isolated_global_rng
    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.metrics.quantus_bridge import pixel_map
    from xbench.metrics.scoring import score_explanations
    from xbench.tasks.catalogue import resolve_task
    from xbench.tasks.task import load_task, targets_for

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
    if args.threads:
        torch.set_num_threads(args.threads)
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("torch", "captum", "quantus", "numpy", "scipy")}

    # -- setup (untimed) ------------------------------------------------------------------------
    spec = resolve_task(args.task)
    t0 = time.perf_counter()
    task = load_task(spec, args.n)
    load_s = time.perf_counter() - t0
    module, n = task.module, len(task.examples)
    module.eval()
    targets, _, _ = targets_for(task, task.engine())
    y = np.asarray(targets, dtype=np.int64)
    x = np.stack([ex.x for ex in task.examples]).astype(np.float32)
    F = task.examples[0].n_features
    if x.shape[1] != 1 or any(ex.n_features != F for ex in task.examples) or F % args.steps:
        raise SystemExit(f"needs one-channel images of one size whose pixel count divides by --steps "
                         f"(got {x.shape}, {F} pixels, --steps {args.steps})")
    ids = [ex.id for ex in task.examples]
    sal = Explainer.registry.get("saliency")()
    spread = np.array([float(ex.x.max() - ex.x.min()) for ex in task.examples])
    bound = 0.05 * float(np.median(spread))
    subset = int(math.ceil(0.2 * F - 1e-9))

    def xb_explain():
        return sal.explain(task, task.examples, y.tolist(), 0)

    def q_explain():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return quantus.explain(module, x, y, method="Saliency", device="cpu")

    xb_explain(), q_explain()  # warm (captum, first-call kernels), untimed
    other = OtherCpu().start()
    secs, cpu, out = timed({"xbench": xb_explain, "quantus": q_explain}, args.repeats)
    expl = out["xbench"]
    a_map = np.stack([pixel_map(ex, expl.attributions[i]) for i, ex in enumerate(task.examples)]).astype(np.float32)
    explain = {"seconds": secs, "median": {k: statistics.median(v) for k, v in secs.items()},
               "cpu_seconds": cpu, "cpu_median": {k: statistics.median(v) for k, v in cpu.items()},
               "xbench_inside_timer_seconds": float(np.sum(expl.seconds)),
               "agreement": agreement(a_map, out["quantus"])}

    # -- metrics ------------------------------------------------------------------------------------
    norm = {"normalise_func_kwargs": {"normalise_axes": [1, 2, 3]}}  # the bridge's per-example normalising
    # what the bridge sets itself (quantus_bridge.FORCED): per-example values, no warnings or bars
    quiet = {"disable_warnings": True, "display_progressbar": False, "return_aggregate": False}
    specs = {
        "PixelFlipping": {
            "quantus": {"features_in_step": F // args.steps, "perturb_baseline": 0.0},
            "native": ("deletion_auc", {"steps": args.steps})},
        "FaithfulnessCorrelation": {
            "quantus": {"nr_runs": args.runs, "subset_size": subset, "perturb_baseline": 0.0},
            "native": ("faithfulness_correlation", {"n_samples": args.runs, "subset_size": 0.2, "output": "logit"})},
        "MaxSensitivity": {
            "quantus": {"nr_samples": args.samples, "lower_bound": bound,
                        "return_nan_when_prediction_changes": True},
            "native": ("max_sensitivity", {"radius": 0.05, "n_samples": args.samples})},
    }
    metric_rows, metric_out = [], {}
    for qname, sp in specs.items():
        qparams = sp["quantus"]
        native_name, native_params = sp["native"]
        curves: dict[str, Any] = {}

        def q_alone(qname=qname, qparams=qparams):
            # seeded as the bridge seeds its call (xbench.metrics.quantus_bridge._Run.call)
            seed = derive_seed(task.name, f"quantus:{qname}", "quantus", 0, *ids)
            qm = getattr(quantus, qname)(**qparams, **norm, **quiet)
            with isolated_global_rng(seed), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = qm(model=module, x_batch=x, y_batch=y, a_batch=a_map, channel_first=True,
                         explain_func=quantus.explain, explain_func_kwargs={"method": "Saliency"},
                         device="cpu", batch_size=n)
            if qname == "PixelFlipping":
                curves["quantus"] = np.asarray(res, dtype=np.float64)
                return np.array([trapezoid(c, dx=1.0) for c in curves["quantus"]])
            return np.asarray(res, dtype=np.float64)

        def xb_native(native_name=native_name, native_params=native_params):
            m = Metric.registry.get(native_name)(**native_params)
            plan = score_explanations(task, [expl], [m], targets=y, explainers=[sal])[0]
            r = plan.results[0]
            if r.curves:
                curves["xbench"] = np.stack([r.curves[i] for i in range(n)])
            return r.values

        def xb_bridge(qname=qname, qparams=qparams):
            m = Metric.registry.get(f"quantus:{qname}")(**qparams)
            return score_explanations(task, [expl], [m], targets=y, explainers=[sal])[0].results[0].values

        secs, cpu, vals = timed({"xbench native": xb_native, "quantus": q_alone, "xbench bridge": xb_bridge},
                                args.repeats)
        med = {k: statistics.median(v) for k, v in secs.items()}
        cmed = {k: statistics.median(v) for k, v in cpu.items()}
        entry: dict[str, Any] = {"quantus_params": qparams, "native": [native_name, native_params], "seconds": secs,
                                 "median": med, "cpu_seconds": cpu, "cpu_median": cmed, "values": {k: np.asarray(v).tolist() for k, v in vals.items()},
                                 "bridge_vs_quantus": agreement(vals["xbench bridge"], vals["quantus"])}
        if qname == "PixelFlipping":
            xc = curves["xbench"]
            entry["native_vs_quantus"] = {
                "curves (p after each step)": agreement(xc[:, 1:], curves["quantus"]),
                "quantus area from xbench curve": agreement([trapezoid(c[1:], dx=1.0) for c in xc], vals["quantus"]),
                "deletion_auc vs quantus area": agreement(vals["xbench native"], vals["quantus"])}
            native_cmp = entry["native_vs_quantus"]["curves (p after each step)"]
            what = "curve points"
        else:
            entry["native_vs_quantus"] = {"values": agreement(vals["xbench native"], vals["quantus"]),
                                          "mean native": float(np.nanmean(vals["xbench native"])),
                                          "mean quantus": float(np.nanmean(vals["quantus"]))}
            native_cmp = entry["native_vs_quantus"]["values"]
            what = (f"values (means {entry['native_vs_quantus']['mean native']:.3f} / "
                    f"{entry['native_vs_quantus']['mean quantus']:.3f})")
        b = entry["bridge_vs_quantus"]
        metric_rows.append([qname, native_name, f"{med['xbench native']:.3f}", f"{med['quantus']:.3f}",
                            f"{med['xbench native'] / med['quantus']:.2f}x",
                            f"{cmed['xbench native'] / cmed['quantus']:.2f}x", what,
                            f"{native_cmp['max_abs_diff']:.1e}", f"{native_cmp['pearson']:.4f}",
                            f"{med['xbench bridge']:.3f}", f"{med['xbench bridge'] / med['quantus']:.2f}x",
                            f"{cmed['xbench bridge'] / cmed['quantus']:.2f}x",
                            f"{b['max_abs_diff']:.1e}"])
        metric_out[qname] = entry
    share = other.share()

    result = {"task": spec.name, "n": n, "pixels": F, "versions": versions, "torch_threads": torch.get_num_threads(),
              "cpus": os.cpu_count(), "machine_before": load_before, "other_processes_cpu_share_during_timing": share,
              "load_task_seconds": round(load_s, 2), "max_sensitivity_quantus_lower_bound": bound,
              "explain": explain, "metrics": metric_out}

    # -- report ---------------------------------------------------------------------------------
    print(f"xbench vs Quantus: task={spec.name} n={n} ({F} pixels) repeats={args.repeats} cpus={os.cpu_count()} "
          f"torch_threads={torch.get_num_threads()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"machine before start: {load_before}; other processes during the timed runs: {other_note(share)}")
    em, ea, ec = explain["median"], explain["agreement"], explain["cpu_median"]
    print(f"\nexplaining {n} images (saliency; seconds, median): xbench {em['xbench']:.3f} (inside its per-example "
          f"timer: {explain['xbench_inside_timer_seconds']:.3f}), quantus.explain {em['quantus']:.4f}, ratio "
          f"{em['xbench'] / em['quantus']:.1f}x (CPU seconds: {ec['xbench'] / ec['quantus']:.1f}x); maps: max |diff| {ea['max_abs_diff']:.1e} (max |a| "
          f"{ea['max_abs_value']:.2f}), pearson {ea['pearson']:.6f}")
    print(f"\nmetrics on the same (xbench's) saliency maps, {n} images (wall seconds, median; ratios over Quantus "
          f"alone, of wall and of this process's CPU seconds)")
    print(tabulate(metric_rows, headers=["Quantus metric", "xbench native", "native s", "quantus s", "native/q",
                                         "cpu", "native vs quantus", "max |diff|", "pearson", "bridge s", "bridge/q", "cpu",
                                         "bridge vs q max |diff|"], tablefmt="simple"))
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
