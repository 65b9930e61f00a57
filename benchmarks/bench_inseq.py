"""xbench against the peers on a causal LM: inseq (saliency, input x gradient, Integrated Gradients,
attention) and captum's ``LLMAttribution(FeatureAblation)`` (occlusion), on identical work.

Procedure:

1. A random GPT-2 (``--layers`` 4, ``--width`` 128, 4 heads, float32, eager attention; trained weights
   are not needed for timing) and a word-level tokenizer over the ``kv-retrieval`` vocabulary *without*
   a BOS, so every prompt token is a feature and the three tools' baselines coincide (the ``[UNK]``
   embedding at every position); ``--n`` (50) test prompts of ``kv-retrieval`` with 6 to 12 pairs
   (20 to 38 tokens). xbench's task: ``modality: lm``, ``replacement: unk``, ``explained_output:
   logit`` (log p of the model's greedy next token); the peers get the same token as a forced target,
   with inseq's ``attributed_fn="probability", logprob=True``. The random model's greedy token is
   sometimes a special token (``[PAD]``, ``[BOS]``...), which inseq drops from a forced target text:
   the first n prompts of a pool of 3n whose greedy answer is a word are kept.
2. Per method, both tools are warmed (untimed, on 3 prompts), then each is timed ``--repeats`` times
   over all prompts, alternately; the median is reported. inseq is called one prompt at a time (its
   batches are left-padded, which changes a causal model's scores), and its time includes reducing
   its raw scores to one per token (``aggregate(..., normalize=False)``), the output xbench returns.
   Conventions aligned through parameters: xbench ``saliency`` with ``reduce: l2`` = inseq
   saliency + ``vnorm``; ``input_x_gradient`` / ``integrated_gradients`` (``n_steps: 50``) with the
   default ``reduce: sum`` = inseq's + ``sum``; ``attention`` = inseq attention's last layer, mean over
   heads; ``occlusion`` = captum's log-probability differences (``use_cached_outputs=False``).
   xbench is also timed without the ``malloc_trim`` of its per-example peak-memory measure (column
   "no trim"; :func:`no_trim`), which makes each explanation fault its freed buffers in again.
3. The largest |xbench - peer| per-token score over all prompts is printed and checked (within
   ``1e-5 x max(1, max |score|)``: float32 on both sides); exit status 1 if a method is off.

inseq and captum get deep copies of the model and tokenizer (inseq changes the tokenizer's padding
and the model's config). The thread count is the same for every tool (``--threads``, default torch's).

Run from the repository root::

    python benchmarks/bench_inseq.py
    python benchmarks/bench_inseq.py --n 20 --repeats 5 --threads 1 --json /tmp/bench-inseq.json
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.metadata
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Iterator

from _machine import OtherCpu, load_note, other_note, write_json  # benchmarks/ is on sys.path

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[MASK]"]
#: (xbench explainer, its params, inseq method, inseq aggregation); attention is read raw
METHODS = [("saliency", {"reduce": "l2"}, "saliency", "vnorm"),
           ("input_x_gradient", {}, "input_x_gradient", "sum"),
           ("integrated_gradients", {"n_steps": 50, "method": "gausslegendre"}, "integrated_gradients", "sum"),
           ("attention", {}, "attention", None)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="prompts (default 50)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for every tool (default: torch's)")
    p.add_argument("--tolerance", type=float, default=1e-5,
                   help="largest |xbench - peer| allowed, times max(1, max |score|) (default 1e-5)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.n < 1:
        p.error("--repeats and --n must be >= 1")
    return args


def word_tokenizer(words: list[str]):
    """Word-level fast tokenizer over SPECIALS + words, no BOS (every prompt token is a feature)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]",
                                   mask_token="[MASK]")


@contextlib.contextmanager
def no_trim() -> Iterator[None]:
    """xbench without the ``malloc_trim`` its per-example peak-memory measure does on entry
    (``xbench.core.device.PeakMemory``): the freed heap goes back to the system, so the explanation that
    follows page-faults its buffers in again, inside its timing. Only this benchmark's extra column."""
    import xbench.core.device as device

    trim, device._trim = device._trim, lambda: None
    try:
        yield
    finally:
        device._trim = trim


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = load_note()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("XBENCH_CACHE", tempfile.mkdtemp(prefix="xbench-bench-cache-"))
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)

    import numpy as np
    import torch
    from tabulate import tabulate
    from transformers import GPT2Config, GPT2LMHeadModel

    import inseq
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput
    from xbench.core.seeding import isolated_global_rng
    from xbench.data import DatasetSource
    from xbench.explainers.base import Explainer
    from xbench.tasks.catalogue import parse_task
    from xbench.tasks.task import load_task

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    # -- setup (untimed) ------------------------------------------------------------------------
    # a pool of 3n prompts: the first n whose greedy answer is a word are kept (module docstring)
    data = {"n_train": 0, "n_test": 3 * args.n, "min_pairs": 6, "max_pairs": 12, "n_keys": 16, "n_values": 8}
    splits = DatasetSource.registry.get("kv-retrieval")(**data).load(0)
    tok = word_tokenizer(splits.info["keys"] + splits.label_names + [splits.info["separator"], splits.info["query"]])
    with isolated_global_rng(0):
        model = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tok), n_embd=args.width, n_layer=args.layers, n_head=4, n_positions=64,
            bos_token_id=2, eos_token_id=2, initializer_range=0.1, attn_implementation="eager")).float().eval()
    spec = parse_task({"name": "bench-inseq", "modality": "lm", "replacement": "unk", "explained_output": "logit",
                       "dataset": {"source": "kv-retrieval", "params": data},
                       "model": {"source": "train-gpt2"}}, "<bench-inseq>")
    task = load_task(spec, model=(model, tok, {}))
    special = set(tok.all_special_ids)
    task.examples = [ex for ex in task.examples if int(ex.readout.answer[0]) not in special][:args.n]
    if len(task.examples) < args.n:
        raise SystemExit(f"only {len(task.examples)} of {3 * args.n} prompts have a word as greedy answer")
    exs = task.examples
    prompts, fulls = [], []
    for ex in exs:
        tid = int(ex.readout.answer[0])
        prompt = " ".join(ex.features)
        full = prompt + " " + tok.convert_ids_to_tokens(tid)
        # the text the peers re-tokenize is exactly the prompt's ids and the answer
        assert ex.n_prompt == ex.n_features and tok(full).input_ids == ex.input_ids.tolist() + [tid], ex.id
        prompts.append(prompt)
        fulls.append(full)
    lengths = [ex.n_prompt for ex in exs]

    def xbench_run(name: str, params: dict, sub: slice = slice(None)) -> list[np.ndarray]:
        out = Explainer.registry.get(name)(**params).explain(task, exs[sub], [0] * len(exs[sub]), 0)
        assert out.errors == [None] * len(exs[sub]), out.errors
        return out.attributions

    rows, figures = [], []
    other = OtherCpu().start()

    def compare(method: str, x_fn, p_fn, peer: str) -> None:
        x_fn(slice(0, 3))  # warm both
        p_fn(slice(0, 3))
        tx, tn, tp = [], [], []
        for _ in range(args.repeats):
            s, ours = timed(x_fn)
            tx.append(s)
            with no_trim():
                tn.append(timed(x_fn)[0])
            s, theirs = timed(p_fn)
            tp.append(s)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
        scale_raw = max(float(np.abs(b).max()) for b in theirs)
        scale = max(1.0, scale_raw)
        mx, mn, mp = statistics.median(tx), statistics.median(tn), statistics.median(tp)
        ok = diff <= args.tolerance * scale
        rows.append([method, peer, f"{mx:.3f}", f"{mn:.3f}", f"{mp:.3f}", f"{mp / mx:.2f}x", f"{diff:.1e}",
                     f"{scale_raw:.3f}", "ok" if ok else "FAIL"])
        figures.append({"method": method, "peer": peer, "xbench_s": tx, "xbench_no_trim_s": tn, "peer_s": tp,
                        "xbench_median_s": mx, "xbench_no_trim_median_s": mn, "peer_median_s": mp, "ratio": mp / mx,
                        "max_abs_diff": diff, "max_abs_score": scale_raw, "ok": ok})

    for name, params, meth, agg in METHODS:
        im = inseq.load_model(copy.deepcopy(model), meth, tokenizer=copy.deepcopy(tok))
        kw = {} if meth == "attention" else {"attributed_fn": "probability", "logprob": True}

        def peer_run(sub: slice = slice(None), im=im, kw=kw, agg=agg) -> list[np.ndarray]:
            out = []
            for prompt, full, n in zip(prompts[sub], fulls[sub], lengths[sub]):
                sa = im.attribute(prompt, generated_texts=full, show_progress=False, **kw).sequence_attributions[0]
                if agg is None:  # attention: (keys, layers, heads) -> last layer, mean over heads
                    out.append(sa.target_attributions[:n, 0][:, -1, :].mean(-1).double().numpy())
                else:
                    out.append(sa.aggregate(agg, normalize=False).target_attributions[:n, 0].double().numpy())
            return out

        compare(name, lambda sub=slice(None), name=name, params=params: xbench_run(name, params, sub), peer_run,
                f"inseq {meth}" + (f" ({agg})" if agg else ""))

    ctok = copy.deepcopy(tok)
    fa = LLMAttribution(FeatureAblation(copy.deepcopy(model)), ctok)

    def captum_run(sub: slice = slice(None)) -> list[np.ndarray]:
        out = []
        for prompt, ex in zip(prompts[sub], exs[sub]):
            inp = TextTokenInput(prompt, ctok, baselines=ctok.unk_token_id)
            # use_cached_outputs=False: captum 0.9's cached decoding is wrong from a 2nd target token on
            r = fa.attribute(inp, target=torch.tensor([int(ex.readout.answer[0])]), use_cached_outputs=False)
            out.append(r.seq_attr.double().numpy())
        return out

    compare("occlusion", lambda sub=slice(None): xbench_run("occlusion", {}, sub), captum_run,
            "captum LLMAttribution(FeatureAblation)")
    other_share = other.share()

    versions = {k: importlib.metadata.version(k) for k in ("torch", "transformers", "inseq", "captum")}
    print(f"# xbench vs inseq / captum on a causal LM: GPT-2 {args.layers} layers x {args.width} (random, float32, "
          f"eager), {len(exs)} kv-retrieval prompts of {min(lengths)}-{max(lengths)} tokens, explained: log p of "
          f"the greedy next token")
    print(f"# {os.cpu_count()} CPUs, {threads} torch threads; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"# machine before: {load_before}; other processes during the timings: {other_note(other_share)}")
    print(f"# seconds for all {len(exs)} prompts, median of {args.repeats}; ratio = peer / xbench\n")
    print(tabulate(rows, headers=["method", "peer", "xbench s", "xbench s, no trim", "peer s", "ratio",
                                 "max |diff|", "max |score|", "check"],
                   tablefmt="github"))
    if args.json:
        write_json(args.json, {"n": len(exs), "tokens": [min(lengths), max(lengths)], "layers": args.layers,
                               "width": args.width, "threads": threads, "cpus": os.cpu_count(), "versions": versions,
                               "machine_before": load_before, "other_cpu": other_share, "methods": figures})
    return 0 if all(f["ok"] for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
