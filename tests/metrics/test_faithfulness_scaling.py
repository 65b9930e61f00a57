"""Cost against the number of features F: decision_flip's incremental rounds (same values as the full
scan, fewer inputs) and the normalised AOPC's greedy bounds (O(|B|·F) inputs), with the greedy
bounds' error measured against the exact bounds (every nested chain of feature sets, by dynamic
programming over subsets) on small inputs.

The model is a tiny randomly initialised BERT over a word-level vocabulary (nonlinear, with
interactions between words: on the linear test model every greedy choice would be exact).
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from helpers import fixed_explanations
from xbench.data.base import DatasetSource, Record, Splits
from xbench.metrics.base import Context, Metric, ks_of
from xbench.metrics.scoring import score_explanations
from xbench.models.base import ModelSource
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task, targets_for

M = Metric.registry.get
VOCAB = [f"w{j}" for j in range(40)]
BINS = (0.01, 0.05, 0.10, 0.20, 0.50)


class RandomWords(DatasetSource):
    """``n`` examples of exactly ``n_words`` words drawn (seeded) from VOCAB, random 0/1 labels and
    rationales."""

    name = "test-faith-random-words"
    params = {"n": 6, "n_words": 10}

    def load(self, seed):
        rng = np.random.default_rng([seed, self.p["n_words"]])
        recs = [Record(f"r{i}", [VOCAB[j] for j in rng.integers(0, len(VOCAB), self.p["n_words"])],
                       int(rng.integers(0, 2)), [int(v) for v in rng.random(self.p["n_words"]) < 0.3])
                for i in range(self.p["n"])]
        return Splits(recs, recs, ["neg", "pos"])


class RandomBert(ModelSource):
    """A 2-layer, 32-wide BERT, randomly initialised (seeded), over VOCAB's word-level tokenizer."""

    name = "test-faith-random-bert"
    params = {"init": 0.5}

    def load(self, task, splits):
        from transformers import BertConfig, BertForSequenceClassification

        from xbench.core.seeding import isolated_global_rng
        from xbench.models.bert import build_word_tokenizer

        tok = build_word_tokenizer(VOCAB, task.max_length)
        config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=max(64, task.max_length),
                            num_labels=2, initializer_range=self.p["init"], pad_token_id=tok.pad_token_id,
                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
        with isolated_global_rng(task.model.seed):
            model = BertForSequenceClassification(config).eval()
        return model, tok, {"test_accuracy": None}


def random_task(n_words: int, n: int = 6, seed: int = 0):
    spec = parse_task({"name": f"random-{n_words}", "modality": "text", "granularity": "tokens",
                       "replacement": "mask", "rationale": True, "max_length": n_words + 2,
                       "dataset": {"source": RandomWords.name, "seed": seed, "params": {"n": n, "n_words": n_words}},
                       "model": {"source": RandomBert.name, "seed": seed}}, f"random-{n_words}.yaml")
    return load_task(spec)


def exact_bounds(ctx: Context, i: int, keep_top: bool, bins=BINS) -> tuple[float, float]:
    """(lowest, highest) AOPC over every chain S_1 ⊆ ... ⊆ S_|B| with |S_b| = k_b, exactly: the best
    chain ending in each set of size k_b is the set's drop plus the best chain ending in one of its
    subsets of the previous size (every subset of every bin size is evaluated)."""
    ex = ctx.task.examples[i]
    F = ex.n_features
    ks = ks_of(tuple(bins), F)
    sizes, mult = np.unique(ks, return_counts=True)
    levels = [list(combinations(range(F), int(k))) for k in sizes]
    drops = []
    for sets in levels:
        chosen = np.zeros((len(sets), F), dtype=bool)
        for r, s in enumerate(sets):
            chosen[r, list(s)] = True
        drops.append(chosen)
    handles = [ctx.engine.submit(ex, c if keep_top else ~c) for c in drops]
    ctx.engine.run()
    p0 = ctx.p_full(i)
    drops = [p0 - ctx.p_target(i, h) for h in handles]
    out = []
    for sign in (1.0, -1.0):
        best = {s: sign * m * d for s, d in zip(levels[0], drops[0]) for m in [mult[0]]}
        for b in range(1, len(sizes)):
            prev_k = int(sizes[b - 1])
            best = {s: sign * mult[b] * d + max(best[t] for t in combinations(s, prev_k))
                    for s, d in zip(levels[b], drops[b])}
        out.append(sign * max(best.values()) / len(ks))
    return out[1], out[0]


def contexts(task, attrs):
    engine = task.engine()
    targets, _, _ = targets_for(task, engine)
    return Context(task, fixed_explanations(task, attrs), targets, engine)


# -- normalised AOPC: the greedy bounds against the exact ones ----------------------------------------

#: the share of the exact range (hi − lo) that a greedy bound misses, mean and worst over 72 bounds
#: (6 examples at each of F = 10, 12, 14, both metrics, highest and lowest). Measured: mean 0.0185,
#: worst 0.164 (the beam search, width 2: mean 0.011, worst 0.072); the test fails if it gets worse
GREEDY_MEAN_GAP, GREEDY_MAX_GAP = 0.025, 0.20


def measure_gaps(sizes=(10, 12, 14)) -> list[dict]:
    """Per (F, metric, example): the exact bounds and the greedy and beam ones, and their gaps as a
    share of the exact range."""
    rows = []
    for F in sizes:
        task = random_task(F)
        ctx = contexts(task, [np.zeros(F)] * len(task.examples))
        for base in ("comprehensiveness_normalized", "sufficiency_normalized"):
            greedy, beam = M(base + "_greedy")(), M(base)()
            for i in range(ctx.n):
                lo, hi = exact_bounds(ctx, i, greedy.keep_top)
                for how, m in (("greedy", greedy), ("beam", beam)):
                    glo, ghi = m.bounds(ctx, i)
                    rows.append({"F": F, "metric": base, "how": how, "i": i, "lo": lo, "hi": hi,
                                 "gap_hi": (hi - ghi) / (hi - lo), "gap_lo": (glo - lo) / (hi - lo),
                                 "inside": lo - 1e-6 <= glo <= ghi <= hi + 1e-6})
    return rows


@pytest.fixture(scope="module")
def bound_gaps():
    return measure_gaps()


def test_greedy_bounds_are_achievable_chains_inside_the_exact_bounds(bound_gaps):
    assert all(r["inside"] for r in bound_gaps)
    assert all(r["hi"] - r["lo"] > 1e-4 for r in bound_gaps)  # the model is not flat: the gaps mean something


def test_greedy_bounds_error_against_the_exact_bounds(bound_gaps):
    gaps = np.array([[r["gap_hi"], r["gap_lo"]] for r in bound_gaps if r["how"] == "greedy"])
    assert gaps.mean() <= GREEDY_MEAN_GAP and gaps.max() <= GREEDY_MAX_GAP, (gaps.mean(), gaps.max())


def test_greedy_inputs_grow_linearly_in_f():
    """At most 2·(|B| + ⌈0.5 / step⌉)·(F + 1) inputs per example for both bounds (30·(F + 1) with
    ERASER's bins and step 0.05), where the beam search's grow as F²."""
    for F in (16, 48, 100):
        task = random_task(F, n=1)
        ctx = contexts(task, [np.arange(F, dtype=float)])
        for name in ("comprehensiveness_normalized_greedy", "sufficiency_normalized_greedy"):
            before = ctx.engine.n_requested
            M(name)().bounds(ctx, 0)
            assert ctx.engine.n_requested - before <= 2 * (len(BINS) + 10) * (F + 1)


def test_greedy_metrics_score_and_keep_the_old_ones_unchanged():
    """The new names score through the public path; the existing metrics keep their parameters (the
    run configuration hash of published leaderboards) and beam search."""
    assert M("comprehensiveness_normalized").params == {"bins": list(BINS), "beam": 2}
    assert M("sufficiency_normalized").params == {"bins": list(BINS), "beam": 2}
    assert M("comprehensiveness_normalized")().bound == "beam"
    task = random_task(12, n=3)
    attrs = [np.random.default_rng(i).normal(size=12) for i in range(3)]
    ms = [M("comprehensiveness_normalized_greedy")(), M("sufficiency_normalized_greedy")()]
    (planned,) = score_explanations(task, [fixed_explanations(task, attrs)], ms)
    for r in planned.results:
        assert np.all((r.values >= 0) & (r.values <= 1)), r.values
        assert r.notes["bounds"] == "greedy, steps of 0.05·F"


# -- decision_flip: incremental rounds, the same values as the full scan -------------------------------

def full_scan_decision_flip(ctx: Context, i: int) -> float:
    """The algorithm before the rounds: every x \\ top_k, k = 1..F, the first flip."""
    ex = ctx.task.examples[i]
    h = ctx.engine.submit(ex, ~ctx.top_masks(i, np.arange(1, ex.n_features + 1)))
    ctx.engine.run()
    pred = ctx.engine.probs(ctx.full[i:i + 1]).argmax(1)[0]
    flipped = np.flatnonzero(ctx.engine.probs(h).argmax(1) != pred)
    return (flipped[0] + 1) / ex.n_features if len(flipped) else 1.0


@pytest.mark.parametrize("F", [5, 8, 9, 30, 70])
def test_decision_flip_rounds_equal_the_full_scan(F):
    task = random_task(F, n=8, seed=F)
    attrs = [np.random.default_rng([F, i]).normal(size=F) for i in range(8)]
    attrs[1] = -attrs[1]
    m = M("decision_flip")()
    (planned,) = score_explanations(task, [fixed_explanations(task, attrs)], [m])
    (result,) = planned.results
    ctx = contexts(task, attrs)  # a fresh engine for the reference
    old = np.array([full_scan_decision_flip(ctx, i) for i in range(len(attrs))])
    np.testing.assert_array_equal(result.values, old)
    assert m.notes == {"examples_never_flipped": int(np.sum(old == 1.0))}
    # inputs: each example at most max(8, 2k*) removals (k* its flip, F where none), never more than F
    k_star = np.where(old == 1.0, F, np.round(old * F)).astype(int)
    bound = np.minimum(F, np.maximum(8, 2 * k_star)).sum()
    assert result.cost["inputs_requested"] <= bound + len(attrs)  # + the full inputs the context resubmits


def test_decision_flip_rounds_submit_fewer_inputs_than_the_full_scan():
    F = 64
    task = random_task(F, n=8, seed=3)
    attrs = [np.random.default_rng([F, i]).normal(size=F) for i in range(8)]
    (planned,) = score_explanations(task, [fixed_explanations(task, attrs)], [M("decision_flip")()])
    (result,) = planned.results
    flips = result.values < 1
    assert flips.any()
    assert result.cost["inputs_requested"] < F * len(attrs)
