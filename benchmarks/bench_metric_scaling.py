"""Metric cost against the input length: engine inputs and seconds per example at F features.

For every metric of a suite (default ``full``) that applies to a text task, plus the greedy
normalised AOPC metrics (``comprehensiveness_normalized_greedy``, ``sufficiency_normalized_greedy``,
not in any suite), on texts of exactly F words for each F (default 64, 128, 256, 512):

1. A task of ``--n`` generated examples of F words each (a seeded draw from a 40-word vocabulary,
   0/1 rationales, so the plausibility metrics apply; each label is set to the model's prediction,
   so that they score every example) and a tiny randomly
   initialised BERT over a word-level tokenizer (1 layer, 16 wide, 2 heads; seeded, so model-seed
   stability re-draws it per seed). Features are words: F words give F features (and F + 2 tokens).
2. One explainer (``--explainer``, default ``saliency``) explains the examples (untimed).
3. Each metric alone, on a **fresh** engine (primed with the full inputs, as the runner primes it),
   through :func:`xbench.metrics.scoring.score_explanations`: so every figure is the metric's own
   cost, with nothing shared with another metric. Reported per example: engine inputs requested,
   unique inputs evaluated (what the model runs), forward passes on the task's model (unique inputs
   plus re-explanations' passes; re-explanations on other models, e.g. model-seed stability's,
   included) and wall seconds (plan, engine pass, score).

The growth exponent per metric is the least-squares slope of log(unique inputs per example) on
log F (and of log requested inputs, and of log seconds): 1 is linear, 2 quadratic; ``-`` where a
metric asks for no inputs. Metrics that do not apply to text (image patches, tabular ground
truth) are listed as not applicable.

The beam-search normalised AOPC metrics (``comprehensiveness_normalized``,
``sufficiency_normalized``) need ~2·beam·F·k_max ≈ F² inputs per example (about 96,000 at
F = 254): they run only for F <= ``--beam-max-f`` (default 128) and are shown as skipped above
it, with their input count extrapolated from the fitted exponent.

The beam-search metrics are measured on the first ``--beam-n`` examples only (default 1).

Run from the repository root (about 3.5 minutes on 2 CPU cores; 6 with ``--n 2``)::

    .venv/bin/python benchmarks/bench_metric_scaling.py
    .venv/bin/python benchmarks/bench_metric_scaling.py --sizes 32,64,128 --n 3 --json /tmp/scaling.json
    .venv/bin/python benchmarks/bench_metric_scaling.py --metrics decision_flip,taucorr_loo --beam-max-f 256
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Any

VOCAB = [f"w{j}" for j in range(40)]
EXTRA = ["comprehensiveness_normalized_greedy", "sufficiency_normalized_greedy"]
BEAM = ("comprehensiveness_normalized", "sufficiency_normalized")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="64,128,256,512", help="numbers of features F (comma-separated)")
    p.add_argument("--n", type=int, default=1, help="examples per F (default 1; 2 takes about 6 minutes)")
    p.add_argument("--suite", default="full", help="the suite whose metrics are measured (default full)")
    p.add_argument("--metrics", default=None, help="comma-separated subset of the metrics (default: all)")
    p.add_argument("--explainer", default="saliency", help="the one explainer (default saliency)")
    p.add_argument("--beam-max-f", type=int, default=128,
                   help="largest F at which the beam-search normalised AOPC metrics run (default 128)")
    p.add_argument("--beam-n", type=int, default=1,
                   help="examples the beam-search metrics are measured on (default 1: their cost dominates)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    return p.parse_args(argv)


from _machine import load_note, write_json  # noqa: E402  (benchmarks/ is on sys.path)


def register_sources():
    """The generated dataset and the random model, registered under names of their own."""
    import numpy as np

    from xbench.data.base import DatasetSource, Record, Splits
    from xbench.models.base import ModelSource

    class ScalingWords(DatasetSource):
        name = "bench-scaling-words"
        params = {"n": 1, "n_words": 64}

        def load(self, seed):
            rng = np.random.default_rng([seed, self.p["n_words"]])
            F = self.p["n_words"]
            recs = []
            for i in range(self.p["n"]):
                rationale = rng.random(F) < 0.2
                rationale[rng.integers(0, F)] = True  # never empty: the plausibility metrics score every example
                recs.append(Record(f"s{i}", [VOCAB[j] for j in rng.integers(0, len(VOCAB), F)],
                                   int(rng.integers(0, 2)), [int(v) for v in rationale]))
            return Splits(recs, recs, ["neg", "pos"])

    class ScalingBert(ModelSource):
        name = "bench-scaling-bert"
        params = {}
        seeded = True  # the seed re-draws the weights: model-seed stability compares equal draws

        def load(self, task, splits):
            from transformers import BertConfig, BertForSequenceClassification

            from xbench.core.seeding import isolated_global_rng
            from xbench.models.bert import build_word_tokenizer

            tok = build_word_tokenizer(VOCAB, task.max_length)
            config = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=max(64, task.max_length),
                                num_labels=2, initializer_range=0.5, pad_token_id=tok.pad_token_id,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
            with isolated_global_rng(task.model.seed):
                model = BertForSequenceClassification(config).eval()
            return model, tok, {"test_accuracy": None}

    return ScalingWords, ScalingBert


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y on log x (None with fewer than two positive points)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if y and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = load_note()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tmp_cache = tempfile.mkdtemp(prefix="xbench-bench-cache-")
    os.environ["XBENCH_CACHE"] = tmp_cache  # before any xbench import: nothing lands in the user's cache

    import numpy as np
    import torch
    from tabulate import tabulate

    from xbench.explainers.base import Explainer
    from xbench.metrics.base import Metric
    from xbench.metrics.scoring import score_explanations
    from xbench.run.config import load_suite
    from xbench.tasks.catalogue import parse_task
    from xbench.tasks.task import load_task, targets_for

    words, bert = register_sources()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    suite = load_suite(args.suite)
    entries = list(suite.metrics) + [(m, {}) for m in EXTRA if m not in dict(suite.metrics)]
    if args.metrics:
        wanted = {m.strip() for m in args.metrics.split(",") if m.strip()}
        entries = [(m, p) for m, p in entries if m in wanted]
    explainer = Explainer.registry.get(args.explainer)()

    rows: dict[str, dict[int, dict[str, Any]]] = {m: {} for m, _ in entries}
    not_applicable: set[str] = set()
    t_all = time.perf_counter()
    for F in sizes:
        spec = parse_task({"name": f"scaling-{F}", "modality": "text", "granularity": "tokens",
                           "replacement": "mask", "rationale": True, "max_length": F + 2,
                           "dataset": {"source": words.name, "seed": args.seed, "params": {"n": args.n, "n_words": F}},
                           "model": {"source": bert.name, "seed": args.seed}}, f"scaling-{F}.yaml")
        task = load_task(spec)
        assert all(ex.n_features == F for ex in task.examples)
        targets, _, _ = targets_for(task, task.engine())
        for ex, t in zip(task.examples, targets):  # random labels: make every example correctly
            ex.label = int(t)                      # classified, so the plausibility metrics score it
        expl = explainer.explain(task, task.examples, [int(t) for t in targets], args.seed)
        # warm-up (untimed): the first forward passes and scoring calls of a process are slower
        score_explanations(task, [expl], [Metric.registry.get("taucorr_loo")()], targets, args.seed, [explainer])
        full_task, full_targets = task, targets
        for name, params in entries:
            task, targets = full_task, full_targets
            if name in BEAM:  # their bound search dominates the whole benchmark: fewer examples
                task = copy.copy(full_task)
                task.examples, targets = full_task.examples[:args.beam_n], full_targets[:args.beam_n]
            if name in BEAM and F > args.beam_max_f:
                rows[name][F] = {"skipped": True}
                continue
            metric = Metric.registry.get(name)(**params)
            if not metric.applies_to(task, explainer):
                not_applicable.add(name)
                continue
            engine = task.engine()
            targets_for(task, engine)  # the full inputs, as the runner primes the engine
            model = task.model
            r0, u0, f0 = engine.n_requested, engine.n_unique, model.n_forward
            t0 = time.perf_counter()
            (planned,) = score_explanations(task, [expl], [metric], targets, args.seed, [explainer], engine)
            seconds = time.perf_counter() - t0
            (res,) = planned.results
            n = len(task.examples)
            failed = sum(e is not None for e in res.errors)
            rows[name][F] = {
                # the context resubmits the n full inputs (already evaluated): not the metric's
                "requested": (engine.n_requested - r0 - n) / n, "unique": (engine.n_unique - u0) / n,
                "forward": (model.n_forward - f0 + planned.context.reexplain_passes[0]) / n,
                "seconds": seconds / n, "failed": failed,
                "mean_value": float(np.nanmean(res.values)) if failed < n else None}
        print(f"F = {F}: done ({time.perf_counter() - t_all:.0f} s so far)", file=sys.stderr)

    # -- report ---------------------------------------------------------------------------
    def fmt(v: float | None, digits: int = 0) -> str:
        if v is None:
            return "-"
        return f"{v:.{digits}f}" if digits else f"{v:,.0f}"

    measured = [m for m, _ in entries if m not in not_applicable]
    table, result = [], {}
    for name in measured:
        by_f = rows[name]
        ok = [F for F in sizes if F in by_f and not by_f[F].get("skipped")]
        exp_u = slope(ok, [by_f[F]["unique"] for F in ok])
        exp_r = slope(ok, [by_f[F]["requested"] for F in ok])
        exp_s = slope(ok, [by_f[F]["seconds"] for F in ok])
        cells = []
        for F in sizes:
            c = by_f.get(F)
            if c is None:
                cells += ["-", "-"]
            elif c.get("skipped"):
                est = None
                if exp_u is not None and ok:
                    est = by_f[ok[-1]]["unique"] * (F / ok[-1]) ** exp_u
                cells += [f"skipped (~{est:,.0f})" if est else "skipped", "-"]
            else:
                cells += [f"{fmt(c['requested'])}/{fmt(c['unique'])}"
                          + (f" fwd {fmt(c['forward'])}" if c["forward"] > c["unique"] + 0.5 else ""),
                          f"{c['seconds']:.3f}" + (" !" if c["failed"] else "")]
        table.append([name] + cells + [fmt(exp_r, 2) if exp_r is not None else "-",
                                       fmt(exp_u, 2) if exp_u is not None else "-",
                                       fmt(exp_s, 2) if exp_s is not None else "-"])
        result[name] = {"per_f": {str(F): by_f.get(F) for F in sizes}, "exponent_requested": exp_r,
                        "exponent_unique": exp_u, "exponent_seconds": exp_s}
    headers = ["metric"]
    for F in sizes:
        headers += [f"F={F} req/unique", f"F={F} s"]
    headers += ["exp req", "exp unique", "exp s"]
    print(f"xbench metric scaling: suite={suite.name} explainer={args.explainer} n={args.n} per F "
          f"(beam-search metrics: {min(args.n, args.beam_n)}), "
          f"model: random BERT (1 layer, 16 wide), torch_threads={torch.get_num_threads()}, cpus={os.cpu_count()}")
    print(f"machine before start: {load_before}")
    print("per example: engine inputs requested/unique (fwd: forward passes where re-explanations add to "
          "them), wall seconds; '!' = some examples failed; exponents: slope of log(per-example figure) on log F\n")
    print(tabulate(table, headers=headers, tablefmt="github"))
    if not_applicable:
        print(f"\nnot applicable to text: {', '.join(sorted(not_applicable))}")
    skipped = sorted(m for m in BEAM if m in rows and any(c.get("skipped") for c in rows[m].values()))
    if skipped:
        print(f"skipped above F = {args.beam_max_f} (beam search, ~F² inputs; the figure in brackets "
              f"extrapolates the fitted exponent): {', '.join(skipped)}")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    if args.json:
        write_json(args.json, {"sizes": sizes, "n": args.n, "suite": suite.name, "explainer": args.explainer,
                               "beam_max_f": args.beam_max_f, "metrics": result,
                               "not_applicable": sorted(not_applicable), "machine_before": load_before})
    shutil.rmtree(tmp_cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
