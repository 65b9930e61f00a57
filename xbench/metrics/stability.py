"""Stability: does an explanation stay put when nothing that should matter changes?

Three kinds of change, each re-running the explainer through :meth:`Context.reexplain` (whose
cost is the metric's):

- the explainer's own seed (``explainer_seed_stability``; stochastic explainers only);
- small uniform noise on the input (``max_sensitivity``, ``avg_sensitivity``,
  ``relative_input_stability``, ``relative_output_stability``): for text, on the word embeddings of
  the example's tokens, applied to the embedding matrix by :func:`xbench.features.embedding_noise.embedding_noise`
  so that every explainer sees it; for images and tabular rows, on the input array itself
  (``x' = x + U[-r, r]`` per element, r = radius · (max − min of x), re-explained as a new example
  with the same baseline and feature map, :meth:`xbench.features.dense.DenseExample.with_input`);
- label-preserving edits of the token ids that touch no gold-rationale (or, without gold, no
  top-attributed) feature: two such features swap places, or one is dropped
  (``discrete_stability_spearman``, ``discrete_stability_topk``).

Only perturbations that keep the model's prediction (argmax) count, as in Yeh et al. (2019, the
label-preserving neighbourhood), Agarwal et al. (2022) and Quantus's
``return_nan_when_prediction_changes``. The share kept is reported in ``Metric.notes`` (the run
manifest); an example with no kept perturbation fails with a reason and counts in ``n_failed``.

The noise for example x, sample s is seeded by (task, 'embedding_noise', example, s, seed) (dense
inputs: (task, 'input_noise', example, s, seed)), and the
discrete edits by (task, 'discrete_perturbation', example, seed): the same perturbed inputs for
every explainer (paired comparisons) and for all four noise metrics (so avg <= max per example),
and one context's re-explanations are computed once and shared by those metrics. The perturbed
inputs are re-explained with their own randomness (the re-explanation's seed parts name the
sample), as Quantus calls the explainer afresh: for stochastic explainers the sensitivities include
their run-to-run variation, which ``explainer_seed_stability`` isolates.

Re-explanations of the noisy copies: by default each kept copy is explained on its own, with the
seed of its own sample, exactly as before. With an explainer's opt-in ``batch_examples`` > 1, about
that many noisy copies (of several examples) go into one
:meth:`~xbench.explainers.base.Explainer.explain` call, which explains them in batched captum calls;
for images and tabular rows the prediction checks of those examples are then one forward pass; for
text the kept copies' attribution inputs are built inside the noise block and explained after it
(only for input-space explainers on a model that reads its word-embedding matrix only to embed ids:
no tied output layer). Batched values agree with the default's to float32 rounding, not bit for bit
(``tests/metrics/test_stability_batched.py``).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import torch
from scipy.stats import ConstantInputWarning, rankdata, spearmanr

from xbench.core.seeding import np_rng, torch_gen
from xbench.features.embedding_noise import embedding_noise, embedding_range, noisy_rows, uniform_noise
from xbench.features.text import TextExample
from xbench.metrics.base import Context, Metric, k_of

NONE_KEPT = "no perturbation kept the model's prediction"
NO_EDIT = "no label-preserving edit possible (too few features outside the protected set)"
NO_ROWS = "no token whose embedding may be perturbed (all special or replacement tokens)"
ZERO_ATTR = "attributions are all zero: the relative change is undefined"
_CACHE = "_xbench_stability_cache"


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (``scipy.stats.spearmanr``, ties get average ranks).

    Convention: identical rankings (including all-tied vectors and single features, where scipy
    returns NaN) count as 1; one constant vector against a varying one stays NaN (undefined).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.array_equal(rankdata(a), rankdata(b)):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        return float(spearmanr(a, b).statistic)


def mean_pairwise_spearman(runs: np.ndarray) -> float:
    """Mean of :func:`spearman` over all pairs of rows of ``runs`` (R, F), from one
    ``scipy.stats.spearmanr`` call on the R runs as variables."""
    runs = np.asarray(runs, dtype=np.float64)
    R = len(runs)
    iu = np.triu_indices(R, 1)
    ranks = rankdata(runs, axis=1)
    same = np.all(ranks[:, None, :] == ranks[None, :, :], axis=2)[iu]
    if same.all():
        return 1.0
    if R == 2 or np.any(np.all(ranks == ranks[:, :1], axis=1)):  # scipy then gives one number for all
        return float(np.mean([spearman(runs[r], runs[s]) for r, s in zip(*iu)]))
    rho = np.asarray(spearmanr(runs, axis=1).statistic)
    return float(np.mean(np.where(same, 1.0, rho[iu])))


def _cache(ctx: Context) -> dict:
    """Per-context store shared by the stability metrics scoring the same (task, explainer)."""
    return ctx.__dict__.setdefault(_CACHE, {})


class _Stability(Metric):
    family = "stability"
    reexplains = True

    def score(self, ctx: Context, states: list[Any]) -> tuple[np.ndarray, list[str | None]]:
        """As :meth:`Metric.score`, with this metric's own reason where an example has no value."""
        self._reasons: dict[int, str] = {}
        values, errors = super().score(ctx, states)
        for i, why in self._reasons.items():
            values[i], errors[i] = np.nan, why
        return values, errors


# --- explainer seeds ----------------------------------------------------------------------------

class ExplainerSeedStability(_Stability):
    """Seed stability of a stochastic explainer: the mean pairwise Spearman correlation
    (``scipy.stats.spearmanr``) among R = n_seeds + 1 runs, the scored one and n_seeds re-runs
    seeded apart (reexplain parts: metric name, run r). Deterministic explainers are not applicable
    (no rows). Identical rankings count as 1 (see :func:`spearman`). The run-to-run stability that
    Visani et al. (2022, 'Statistical stability indices for LIME') measure for LIME, with Spearman's
    rho as the agreement. A random explainer scores ~0; a deterministic one would score 1."""

    name = "explainer_seed_stability"
    direction, ideal = "higher", 1.0
    range = (-1.0, 1.0)
    params = {"n_seeds": 3}
    formula = "2/(R(R−1)) Σ_{r<s} ρ_S(a^(r), a^(s)) over R = n_seeds + 1 runs of the explainer with different seeds"

    def applies_to(self, task, explainer) -> bool:
        return super().applies_to(task, explainer) and bool(explainer.stochastic)

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        exs = [ctx.task.examples[i] for i in idx]
        runs = [[ctx.expl.attributions[i] for i in idx]]
        for r in range(1, int(self.p["n_seeds"]) + 1):
            runs.append(ctx.reexplain(exs, ctx.targets[idx], ctx.seed, None, self.name, r).attributions)
        return np.array([mean_pairwise_spearman([run[j] for run in runs]) for j in range(len(idx))])


# --- embedding noise ----------------------------------------------------------------------------

@dataclass
class NoiseRuns:
    """One example under ``n_samples`` embedding perturbations (shared by the four noise metrics).
    The perturbed embeddings are not kept (L·d floats a sample): :func:`noisy_embeddings` redraws them."""

    kept: np.ndarray                     # (S,) the prediction (argmax of the logits) is unchanged
    h: np.ndarray                        # (C,) logits of the input
    hs: list[np.ndarray]                 # per sample, (C,) logits of the perturbed input
    attrs: list[np.ndarray | None]       # per sample, attributions of the perturbed input (kept only)


def _noise(ctx: Context, i: int, radius: float, s: int) -> tuple[np.ndarray, torch.Tensor]:
    """(rows, noise) of sample s of example i: U[-r, r], r = radius · the example's embedding range,
    from ``torch_gen(task, 'embedding_noise', example, s, seed)``."""
    model, ex = ctx.task.model, ctx.task.examples[i]
    rows = noisy_rows(model, ex)
    r = float(radius) * embedding_range(model, ex)
    dim = model.model.get_input_embeddings().weight.shape[1]
    return rows, uniform_noise(len(rows), dim, r, torch_gen(ctx.task.name, "embedding_noise", ex.id, s, ctx.seed))


def _embed(ctx: Context, i: int) -> np.ndarray:
    with torch.no_grad():
        return ctx.task.model.embed(torch.from_numpy(ctx.task.examples[i].input_ids)).double().numpy()


def noisy_embeddings(ctx: Context, i: int, radius: float, s: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, x'): example i's (L, d) word embeddings, and the same under sample s's noise, read through
    the model's embedding layer inside :func:`embedding_noise` (what the model saw)."""
    x = _embed(ctx, i)
    with embedding_noise(ctx.task.model, *_noise(ctx, i, radius, s)):
        return x, _embed(ctx, i)


def dense(ctx: Context) -> bool:
    """Whether noise goes on the input array itself (images, tabular rows) rather than on the word
    embeddings of token ids (the modality's ``noise``)."""
    return ctx.task.modality.noise == "input"


def noisy_input(ctx: Context, i: int, radius: float, s: int) -> np.ndarray:
    """Sample s of a dense example's input under noise: x + U[-r, r] per element, r = radius · (max − min
    of x), drawn as ``uniform_noise`` from ``torch_gen(task, 'input_noise', example, s, seed)``. Quantus's
    ``uniform_noise`` perturbs the whole input alike; no clipping to the data range (nor in Quantus)."""
    ex = ctx.task.examples[i]
    x = np.asarray(ex.x, dtype=np.float64)
    r = float(radius) * float(x.max() - x.min())
    noise = uniform_noise(1, x.size, r, torch_gen(ctx.task.name, "input_noise", ex.id, s, ctx.seed))
    return (x + noise.numpy().reshape(x.shape)).astype(np.float32)


def _reexplain_each(ctx: Context, examples: list, targets: list[int], parts: list[tuple],
                    prepared: list | None = None) -> list[np.ndarray]:
    """:meth:`Context.reexplain` on this context's task with one seed-parts tuple per example: the
    seeds are those of one ``ctx.reexplain([example], [target], ctx.seed, None, *parts[k])`` call
    each, and one call serves them all, so an explainer with ``batch_examples`` > 1 explains them in
    batches (with the default, one at a time, as before). Only the attributions are kept, so their
    per-call peak memory is not measured (it trims the heap each time: slower than a small model's
    gradient)."""
    if ctx.explainer is None:
        raise RuntimeError("this metric needs the explainer itself (Context.explainer is None)")
    if not examples:
        return []
    return ctx.explainer.explain(ctx.task, examples, [int(t) for t in targets], ctx.seed,
                                 extra_seeds=parts, prepared=prepared, measure_memory=False).attributions


def _dense_noise_runs(ctx: Context, idx: list[int], radius: float, n_samples: int) -> dict[int, NoiseRuns]:
    """:func:`noise_runs` for images and tabular rows: the perturbed input is a new example
    (``with_input``: same baseline and feature map, id ``<id>~noise:<s>``). The kept samples of all
    of ``idx`` are re-explained in one :meth:`~xbench.explainers.base.Explainer.explain` call; with
    an explainer's ``batch_examples`` > 1 the prediction checks of all of ``idx`` are one forward call."""
    model = ctx.task.model
    out: dict[int, NoiseRuns] = {}
    todo: list[tuple[int, int, object]] = []
    inputs = {i: [ctx.task.examples[i].x, *(noisy_input(ctx, i, radius, s) for s in range(n_samples))] for i in idx}
    if ctx.explainer is not None and ctx.explainer.batch_examples > 1:
        # opt-in batching: every example's prediction check in one forward pass too (its logits, like
        # the batched re-explanations, may differ from the one-example-at-a-time ones in the last bits)
        lg_all = model.forward_array(np.stack([x for i in idx for x in inputs[i]]), "logit").astype(np.float64)
        logits = {i: lg_all[k * (n_samples + 1):(k + 1) * (n_samples + 1)] for k, i in enumerate(idx)}
    else:
        logits = {i: model.forward_array(np.stack(inputs[i]), "logit").astype(np.float64) for i in idx}
    for i in idx:
        ex = ctx.task.examples[i]
        xs = inputs[i][1:]
        lg = logits[i]
        h, hs = lg[0], list(lg[1:])
        kept = np.array([int(h_s.argmax()) == int(h.argmax()) for h_s in hs], dtype=bool)
        out[i] = NoiseRuns(kept, h, hs, [None] * n_samples)
        todo += [(i, int(s), ex.with_input(xs[s], f"{ex.id}~noise:{s}")) for s in np.flatnonzero(kept)]
    attrs = _reexplain_each(ctx, [e for _, _, e in todo], [ctx.targets[i] for i, _, _ in todo],
                            [("embedding_noise", s) for _, s, _ in todo])
    for (i, s, _), a in zip(todo, attrs):
        out[i].attrs[s] = a
    return out


def _reads_embeddings_only_by_id(model) -> bool:
    """Whether the model reads its word-embedding matrix only to embed ids (no other module shares
    the weight, e.g. a tied output layer): then an input-space explainer's result on embeddings
    computed under :func:`embedding_noise` does not depend on the noise being still applied."""
    emb = model.model.get_input_embeddings()
    ptr = emb.weight.data_ptr()
    return not any(p.data_ptr() == ptr for m in model.model.modules() if m is not emb
                   for p in m.parameters(recurse=False))


def _text_batched(ctx: Context) -> bool:
    """Whether text noise runs re-explain outside the noise block, in batches: only for an explainer
    with ``batch_examples`` > 1 (opt-in) working on the model's input embeddings, on a model that
    reads the embedding matrix only by id."""
    x = ctx.explainer
    return (x is not None and x.batch_examples > 1 and x.space == "input"
            and _reads_embeddings_only_by_id(ctx.task.model))


def noise_runs(ctx: Context, i: int, radius: float, n_samples: int) -> NoiseRuns:
    """Perturb example i's embedding rows ``n_samples`` times, check the prediction with the model
    adapter's logits on the perturbed embeddings, and re-explain the kept samples (memoised per
    context, so the four noise metrics share one set of re-explanations; the first of them to
    score bears their cost)."""
    return noise_runs_many(ctx, [i], radius, n_samples)[i]


def noise_runs_many(ctx: Context, idx: list[int], radius: float, n_samples: int) -> dict[int, NoiseRuns]:
    """:func:`noise_runs` for each of ``idx`` (memoised per context, by example), their kept samples
    re-explained together where the explainer batches (``batch_examples`` > 1)."""
    store = _cache(ctx)
    key = lambda i: ("noise", i, float(radius), int(n_samples))  # noqa: E731
    todo = [i for i in dict.fromkeys(idx) if key(i) not in store]
    # examples per explain call: one by default (as before: one example's noisy copies are held at a
    # time), else about batch_examples noisy copies
    batch = ctx.explainer.batch_examples if ctx.explainer is not None else 1
    step = max(1, batch // max(1, int(n_samples)))
    if todo and dense(ctx):
        for b in range(0, len(todo), step):
            for i, runs in _dense_noise_runs(ctx, todo[b:b + step], radius, n_samples).items():
                store[key(i)] = runs
    elif todo and _text_batched(ctx):
        # built under the noise, explained after it
        for b in range(0, len(todo), step):
            for i, runs in _text_noise_runs(ctx, todo[b:b + step], radius, n_samples, batched=True).items():
                store[key(i)] = runs
    else:
        for i in todo:
            store[key(i)] = _text_noise_runs(ctx, [i], radius, n_samples)[i]
    return {i: store[key(i)] for i in idx}


def _text_noise_runs(ctx: Context, idx: list[int], radius: float, n_samples: int,
                     batched: bool = False) -> dict[int, NoiseRuns]:
    """Noise runs of text examples: each sample's noise is applied to the embedding matrix
    (:func:`embedding_noise`) while the prediction is read, and while the explainer runs (the default:
    one re-explanation per kept sample, inside the block, so every explainer sees the noise); with
    ``batched``, only the kept samples' attribution inputs are built inside the block and the
    explainer runs after it, on all of them in one call (:func:`_text_batched` says when that is the
    same computation)."""
    model = ctx.task.model
    out: dict[int, NoiseRuns] = {}
    todo: list[tuple[int, int, Any]] = []
    for i in idx:
        ex = ctx.task.examples[i]
        row = [ex.row()]
        h = model.outputs(row, "logit")[0].astype(np.float64)
        kept, hs, attrs = np.zeros(n_samples, bool), [], []
        for s in range(n_samples):
            with embedding_noise(model, *_noise(ctx, i, radius, s)):
                h_s = model.outputs(row, "logit")[0].astype(np.float64)
                kept[s] = int(h_s.argmax()) == int(h.argmax())
                a_s = None
                if kept[s] and batched:
                    todo.append((i, s, ctx.task.attribution_inputs(ex, int(ctx.targets[i]), ctx.explainer.space)))
                elif kept[s]:
                    a_s = _reexplain_each(ctx, [ex], ctx.targets[i:i + 1], [("embedding_noise", s)])[0]
            hs.append(h_s)
            attrs.append(a_s)
        out[i] = NoiseRuns(kept, h, hs, attrs)
    if todo:
        got = _reexplain_each(ctx, [ctx.task.examples[i] for i, _, _ in todo], [ctx.targets[i] for i, _, _ in todo],
                              [("embedding_noise", s) for _, s, _ in todo], [inp for _, _, inp in todo])
        for (i, s, _), a in zip(todo, got):
            out[i].attrs[s] = a
    return out


def relative_change(u: np.ndarray, v: np.ndarray, eps: float) -> float:
    """||(u − v) / u||_2 with eps in place of the zero entries of u (Agarwal et al. 2022; Quantus's
    ``relative_*_stability_objective``). Two numpy lines: Quantus has the same objective only as a
    method of its image-batch metric classes (importing Quantus takes ~6 s)."""
    u, v = np.ravel(u), np.ravel(v)
    return float(np.linalg.norm((u - v) / np.where(u == 0, eps, u)))


class _EmbeddingNoise(_Stability):
    """Noise on the input: the word embeddings for text, the array itself for images and tabular rows."""

    needs = frozenset({"model"})

    def applies_to(self, task, explainer) -> bool:
        return super().applies_to(task, explainer) and task.modality.noise is not None
    direction, ideal = "lower", 0.0
    range = (0.0, float("inf"))
    params = {"radius": 0.05, "n_samples": 5}

    def why_not(self, ctx: Context, i: int) -> str | None:
        why = super().why_not(ctx, i)
        if why is None and not dense(ctx) and not len(noisy_rows(ctx.task.model, ctx.task.examples[i])):
            return NO_ROWS
        return why

    def value(self, ctx: Context, i: int, a: np.ndarray, runs: NoiseRuns, kept: np.ndarray) -> float | None:
        """The example's value from its kept samples; None where it is undefined (a(x) = 0)."""
        raise NotImplementedError

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        out, n_kept, n_all = [], 0, 0
        all_runs = noise_runs_many(ctx, idx, self.p["radius"], self.p["n_samples"])
        for i in idx:
            runs = all_runs[i]
            kept = np.flatnonzero(runs.kept)
            n_kept, n_all = n_kept + len(kept), n_all + len(runs.kept)
            if not len(kept):
                self._reasons[i] = NONE_KEPT
                out.append(np.nan)
                continue
            v = self.value(ctx, i, np.asarray(ctx.expl.attributions[i], dtype=np.float64), runs, kept)
            if v is None:
                self._reasons[i] = ZERO_ATTR
                v = np.nan
            out.append(v)
        self.notes = {"perturbations": n_all, "kept": n_kept, "share_kept": n_kept / n_all if n_all else None}
        return np.array(out, dtype=np.float64)


class _Sensitivity(_EmbeddingNoise):
    def value(self, ctx, i, a, runs, kept):
        norm = np.linalg.norm(a)
        if norm == 0:  # Quantus divides anyway (inf or NaN); say why instead
            return None
        ratios = [np.linalg.norm(a - runs.attrs[s]) / norm for s in kept]
        return float(self.reduce(ratios))


class MaxSensitivity(_Sensitivity):
    """Max-sensitivity (Yeh et al. 2019, 'On the (In)fidelity and Sensitivity of Explanations'), as
    Quantus ``MaxSensitivity`` computes it (difference, Frobenius norms, normalised by ||a(x)||):
    the largest relative change of the attributions over ``n_samples`` label-preserving
    perturbations x' of the word embeddings (:mod:`xbench.features.embedding_noise`), or of the image or tabular
    row itself, uniform in [-r, r] per dimension with r = radius · (max − min of the example's
    embeddings, or of its input array). On tabular rows the one radius spans all columns: it suits
    standardised features."""

    name = "max_sensitivity"
    reduce = staticmethod(np.max)
    formula = ("max_{x'} ‖a(x) − a(x')‖₂ / ‖a(x)‖₂,  x' = x + U[−r, r] on the example's word-embedding "
               "rows (images, tabular: on x itself), r = 0.05·(max − min of x), 5 samples, "
               "prediction kept")


class AvgSensitivity(_Sensitivity):
    """Average sensitivity (Yeh et al. 2019), as Quantus ``AvgSensitivity``: the mean over the kept
    perturbations of ‖a(x) − a(x')‖₂ / ‖a(x)‖₂, with the same perturbations as ``max_sensitivity``."""

    name = "avg_sensitivity"
    reduce = staticmethod(np.mean)
    formula = "mean_{x'} ‖a(x) − a(x')‖₂ / ‖a(x)‖₂ over the perturbations of max_sensitivity"


class _Relative(_EmbeddingNoise):
    params = {"radius": 0.05, "n_samples": 5, "eps": 1e-6}

    def reference(self, ctx: Context, i: int, runs: NoiseRuns, s: int) -> tuple[np.ndarray, np.ndarray]:
        """The quantity whose relative change is the denominator, before and after sample s."""
        raise NotImplementedError

    def value(self, ctx, i, a, runs, kept):
        eps = float(self.p["eps"])
        ratios = []
        for s in kept:
            ref, ref_s = self.reference(ctx, i, runs, s)
            change = relative_change(a, runs.attrs[s], eps)
            ratios.append(change / max(relative_change(ref, ref_s, eps), eps))
        return float(np.max(ratios))


class RelativeInputStability(_Relative):
    """Relative input stability, RIS (Agarwal et al. 2022, 'Rethinking Stability for Attribution-based
    Explanations'; OpenXAI): the largest ratio of the relative change of the attributions to
    the relative change of the input, here the (L, d) word-embedding matrix (images and tabular
    rows: the input array), over the kept perturbations of ``max_sensitivity``. Relative changes
    divide entrywise, by eps where an entry of a(x) (or x) is 0, as Quantus's objective does; the
    denominator is clamped at eps (the paper's max(·, ε_min)). p = 2, eps = 1e-6. (OpenXAI's current
    release divides norms, ‖a − a'‖/‖a‖, instead; the paper's entrywise form is used here.)
    Zero-valued embedding entries make the denominator large (so do an image's zero pixels): compare
    RIS across explainers on one model, not across models."""

    name = "relative_input_stability"
    formula = ("max_{x'} ‖(a(x) − a(x'))/a(x)‖₂ / max(‖(x − x')/x‖₂, ε),  x = word embeddings "
               "(images, tabular: the input), ε = 1e-6")

    def reference(self, ctx, i, runs, s):
        if ctx is not None and dense(ctx):
            return (np.asarray(ctx.task.examples[i].x, dtype=np.float64),
                    noisy_input(ctx, i, self.p["radius"], s).astype(np.float64))
        return noisy_embeddings(ctx, i, self.p["radius"], s)


class RelativeOutputStability(_Relative):
    """Relative output stability, ROS (Agarwal et al. 2022; OpenXAI): as RIS, with the
    relative change of the model's logits h in the denominator (entrywise, eps for zero logits)."""

    name = "relative_output_stability"
    formula = ("max_{x'} ‖(a(x) − a(x'))/a(x)‖₂ / max(‖(h(x) − h(x'))/h(x)‖₂, ε),  h = logits, "
               "ε = 1e-6")

    def reference(self, ctx, i, runs, s):
        return runs.h, runs.hs[s]


# --- discrete, label-preserving edits in token-id space -----------------------------------------

@dataclass
class Edit:
    """A perturbed copy of an example and how its features map back."""

    example: TextExample
    #: old feature index of each new feature (the aligned features, in the new reading order)
    old: np.ndarray
    op: str


def units(ex: TextExample) -> list[tuple[int, np.ndarray]] | None:
    """The example as a list of (feature id or -1, token positions): one unit per special token and
    one per feature; None if a feature's tokens are not contiguous (then no edit is defined)."""
    out: list[tuple[int, np.ndarray]] = []
    start = 0
    fid = ex.feature_ids
    for j in range(1, len(fid) + 1):
        if j == len(fid) or fid[j] < 0 or fid[j] != fid[start]:
            out.append((int(fid[start]), np.arange(start, j)))
            start = j
    feats = [f for f, _ in out if f >= 0]
    return out if len(feats) == len(set(feats)) == ex.n_features else None


def rebuild(ex: TextExample, parts: list[tuple[int, np.ndarray]], new_id: str, op: str) -> Edit:
    """A new example from reordered/removed units of ``ex``: ids, token types, feature ids
    (renumbered in reading order), feature names and rationale moved consistently."""
    pos = np.concatenate([p for _, p in parts])
    old = np.array([f for f, _ in parts if f >= 0], dtype=np.int64)
    new_of_old = np.full(ex.n_features, -1, dtype=np.int64)
    new_of_old[old] = np.arange(len(old))
    fid = ex.feature_ids[pos]
    fid = np.where(fid >= 0, new_of_old[np.maximum(fid, 0)], -1)
    new = TextExample(new_id, ex.input_ids[pos].copy(), fid, ex.label, [ex.features[f] for f in old],
                      None if ex.rationale is None else ex.rationale[old].copy(),
                      None if ex.token_type_ids is None else ex.token_type_ids[pos].copy(), ex.truncated)
    return Edit(new, old, op)


def protected(ctx: Context, i: int, fraction: float) -> np.ndarray:
    """Features an edit must not touch: the gold rationale where the example has a non-empty one,
    else the top ``k_of(fraction, F)`` features by attribution (ties as in Context.order)."""
    ex = ctx.task.examples[i]
    if ex.rationale is not None and ex.rationale.any():
        return ex.rationale.astype(bool)
    return ctx.top_masks(i, np.array([k_of(fraction, ex.n_features)]))[0]


def edits(ctx: Context, i: int, n: int, fraction: float) -> list[Edit]:
    """Up to ``n`` distinct edits of example i touching only unprotected features, alternating
    swap, drop, swap, ...: a *swap* exchanges the places of two unprotected features whose tokens
    differ (within one segment); a *drop* deletes one unprotected feature's tokens (only where at
    least 3 features exist, so two remain to correlate). Special tokens are never moved or removed
    relative to each other, and ids are never decoded: nothing can be re-tokenised differently.
    Swapping in other vocabulary words is avoided on purpose: a random word may carry signal.
    Which swaps and drops are taken is drawn by ``np_rng(task, 'discrete_perturbation', example, seed)``."""
    ex = ctx.task.examples[i]
    us = units(ex)
    if us is None:
        return []
    free = np.flatnonzero(~protected(ctx, i, fraction))
    at = {f: k for k, (f, _) in enumerate(us) if f >= 0}  # feature -> unit index

    def content(f: int) -> tuple:
        p = us[at[f]][1]
        return tuple(ex.input_ids[p]), None if ex.token_type_ids is None else tuple(ex.token_type_ids[p])

    def segment(f: int) -> int:
        return 0 if ex.token_type_ids is None else int(ex.token_type_ids[us[at[f]][1][0]])

    swaps = [(int(a), int(b)) for a, b in combinations(free, 2)
             if content(a) != content(b) and segment(a) == segment(b)]
    drops = [int(f) for f in free] if ex.n_features >= 3 else []
    rng = np_rng(ctx.task.name, "discrete_perturbation", ex.id, ctx.seed)
    swaps = [swaps[k] for k in rng.permutation(len(swaps))]
    drops = [drops[k] for k in rng.permutation(len(drops))]
    out: list[Edit] = []
    while len(out) < n and (swaps or drops):
        if swaps and (len(out) % 2 == 0 or not drops):
            a, b = swaps.pop(0)
            parts = list(us)
            parts[at[a]], parts[at[b]] = us[at[b]], us[at[a]]
            out.append(rebuild(ex, parts, f"{ex.id}~swap:{a}:{b}", "swap"))
        else:
            f = drops.pop(0)
            parts = [u for k, u in enumerate(us) if k != at[f]]
            out.append(rebuild(ex, parts, f"{ex.id}~drop:{f}", "drop"))
    return out


@dataclass
class EditRuns:
    edits: list[Edit]
    kept: np.ndarray                 # (len(edits),) prediction unchanged
    attrs: list[np.ndarray | None]   # re-explanations of the kept edits


class _Discrete(_Stability):
    direction, ideal = "higher", 1.0
    params = {"n_perturbations": 4, "protect": 0.2}

    def applies_to(self, task, explainer) -> bool:
        """Token-id sequences only (the modality's ``token_edits``: text)."""
        return super().applies_to(task, explainer) and task.modality.token_edits

    def _key(self) -> tuple:
        return ("discrete", int(self.p["n_perturbations"]), float(self.p["protect"]))

    def plan_one(self, ctx: Context, i: int):
        """Submit each edit (as a full-keep input) so the engine evaluates its prediction with the rest."""
        es = edits(ctx, i, int(self.p["n_perturbations"]), float(self.p["protect"]))
        return es, np.array([ctx.engine.submit(e.example, np.ones(e.example.n_features, bool))[0] for e in es],
                            dtype=np.int64)

    def _runs(self, ctx: Context, idx: list[int], states) -> dict[int, EditRuns]:
        """Kept edits of every example in ``idx``, re-explained in one call (memoised per context)."""
        store = _cache(ctx).setdefault(self._key(), {})
        todo = [i for i in idx if i not in store]
        batch: list[tuple[int, int]] = []
        for i in todo:
            es, handles = states[i]
            if len(es):
                pred = ctx.engine.probs(ctx.full[i:i + 1]).argmax(1)[0]
                kept = ctx.engine.probs(handles).argmax(1) == pred
            else:
                kept = np.zeros(0, bool)
            store[i] = EditRuns(es, kept, [None] * len(es))
            batch += [(i, k) for k in np.flatnonzero(kept)]
        if batch:
            expl = ctx.reexplain([store[i].edits[k].example for i, k in batch],
                                 np.array([ctx.targets[i] for i, _ in batch]), ctx.seed, None, "discrete_stability")
            for (i, k), a in zip(batch, expl.attributions):
                store[i].attrs[k] = a
        return store

    def compare(self, ctx: Context, i: int, a: np.ndarray, e: Edit, a_new: np.ndarray) -> float:
        raise NotImplementedError

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        store = self._runs(ctx, idx, states)
        out, n_kept, n_all = [], 0, 0
        for i in idx:
            runs = store[i]
            n_all, n_kept = n_all + len(runs.edits), n_kept + int(runs.kept.sum())
            if not len(runs.edits):
                self._reasons[i] = NO_EDIT
                out.append(np.nan)
                continue
            if not runs.kept.any():
                self._reasons[i] = NONE_KEPT
                out.append(np.nan)
                continue
            a = np.asarray(ctx.expl.attributions[i], dtype=np.float64)
            out.append(np.mean([self.compare(ctx, i, a, runs.edits[k], np.asarray(runs.attrs[k], dtype=np.float64))
                                for k in np.flatnonzero(runs.kept)]))
        self.notes = {"perturbations": n_all, "kept": n_kept, "share_kept": n_kept / n_all if n_all else None}
        return np.array(out, dtype=np.float64)


class DiscreteStabilitySpearman(_Discrete):
    """Stability under label-preserving token edits: the mean over kept edits x' of Spearman's rho
    (``scipy.stats.spearmanr``) between a(x) and a(x') on the aligned features (every feature the edit
    kept, matched by identity, not position). Edits swap two features or drop one, never touching the
    gold rationale (or, without gold, the top 20% by attribution); only edits that keep the
    prediction count. The rank-correlation and top-k measures of Sinha et al. (2021, 'Perturbing
    inputs for fragile interpretations in deep NLP') and Ivankay et al. (2022), under edits that
    cannot add signal: no new words, no gold words touched."""

    name = "discrete_stability_spearman"
    range = (-1.0, 1.0)
    formula = ("mean_{x'} ρ_S(a(x)|_A, a(x')|_A),  x' = x with two unprotected features swapped or one "
               "dropped, prediction kept, A = features of x' (aligned by identity)")

    def compare(self, ctx, i, a, e, a_new):
        return spearman(a[e.old], a_new)


class DiscreteStabilityTopK(_Discrete):
    """Stability under label-preserving token edits, top-k: the mean over kept edits of
    |top_k(a(x)|_A) ∩ top_k(a(x')|_A)| / k, with k = |protected| (the gold rationale's size; without
    gold, the protected top 20%), or ⌈k·|A|⌉ where the ``k`` fraction is given. Ties are broken by
    one seeded permutation over the original features (Context.order's), the same in both rankings,
    so exactly permuted attributions score 1."""

    name = "discrete_stability_topk"
    range = (0.0, 1.0)
    params = {"n_perturbations": 4, "protect": 0.2, "k": None}
    formula = ("mean_{x'} |top_k(a(x)|_A) ∩ top_k(a(x')|_A)| / k,  k = |G| "
               "(edits and A as for discrete_stability_spearman)")

    def compare(self, ctx, i, a, e, a_new):
        ex = ctx.task.examples[i]
        if self.p["k"] is None:
            k = int(protected(ctx, i, float(self.p["protect"])).sum())
        else:
            k = k_of(float(self.p["k"]), len(e.old))
        k = min(max(k, 1), len(e.old))
        tie = np_rng(ctx.task.name, ctx.expl.explainer, "order", ex.id, ctx.seed).permutation(ex.n_features)[e.old]
        top = np.lexsort((tie, -np.nan_to_num(a[e.old], nan=-np.inf)))[:k]
        top_new = np.lexsort((tie, -np.nan_to_num(a_new, nan=-np.inf)))[:k]
        return len(np.intersect1d(top, top_new)) / k
