"""Sanity checks: does the explanation change when what it claims to explain changes?

Each metric explains every example again under a change that should matter: another output
class (``random_logit``), or a model whose weights were re-drawn at random
(``randomization_cascade``, ``randomization_full``), and reports the similarity of the two
explanations as Spearman's rank correlation ρ (``scipy.stats.spearmanr``, average ranks for
ties) over the example's features: of the signed attributions for ``random_logit`` (Quantus
``RandomLogit``'s default), of their absolute values for the randomisation metrics (Quantus
``MPRT``'s default; ``abs: false`` for signed). An explanation that ignores the class or the
model keeps ρ = 1 and fails the check: lower is better.

Conventions (documented in each metric and tested):

- **Same explainer randomness.** The second explanation uses the same per-example seed as the
  first (common random numbers), so only the class or the model differs between the two. With
  fresh randomness a stochastic explainer would look class- and model-sensitive from its own
  noise alone, and the ``random`` control, which ignores both, would pass.
- **Constant explanations.** ρ is undefined (scipy returns NaN) when a vector is constant. A
  constant explanation ranks nothing, so ρ is taken as 0 when exactly one of the two is
  constant (no association) and 1 when both are (identical, all-tied, ranks: nothing changed).
  How many comparisons took this convention goes into the metric's notes (``n_constant``).
- **Not finite.** A re-explanation with NaN or infinite attributions fails that example with
  an error that says so.
- **One feature.** An example with fewer than 2 features has no ranking to compare; it fails
  with an error that says so.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.stats import spearmanr

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng, torch_gen
from xbench.metrics.base import Context, Metric

if TYPE_CHECKING:  # pragma: no cover
    from xbench.explainers.base import Explainer
    from xbench.tasks.task import Task

TOO_FEW = "fewer than 2 features: no ranking to compare"
BAD_REEXPLANATION = "NaN or infinite attributions when explained again"


def rank_similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, bool]:
    """(Spearman's ρ of two attribution vectors, whether a constant vector made it a convention).

    scipy's ``spearmanr`` returns NaN for a constant vector; we return 0 when exactly one of the
    two is constant and 1 when both are (see the module docstring)."""
    const_a, const_b = bool(np.all(a == a[0])), bool(np.all(b == b[0]))
    if const_a or const_b:
        return (1.0 if const_a and const_b else 0.0), True
    return float(spearmanr(a, b).statistic), False


class _Sanity(Metric):
    family = "sanity"
    reexplains = True
    direction = "lower"
    range = (-1.0, 1.0)
    needs = frozenset({"model"})

    def why_not(self, ctx: Context, i: int) -> str | None:
        why = super().why_not(ctx, i)
        if why is None and ctx.task.examples[i].n_features < 2:
            return TOO_FEW
        return why

    def score(self, ctx: Context, states: list) -> tuple[np.ndarray, list[str | None]]:
        self.notes.pop("n_constant", None)
        return super().score(ctx, states)  # a non-finite re-explanation fails its example (``_failed``)

    def similarities(self, ctx: Context, idx: list[int], other: list[np.ndarray],
                     absolute: bool = False) -> np.ndarray:
        """ρ between the original attributions of examples ``idx`` and ``other`` (in the same order),
        of their absolute values if ``absolute``. Counts the comparisons that took the constant-vector
        convention in ``notes['n_constant']``; a non-finite re-explanation gives NaN and its own error."""
        out = np.full(len(idx), np.nan)
        n_const = 0
        for r, (i, b) in enumerate(zip(idx, other)):
            a, b = ctx.expl.attributions[i], np.asarray(b, dtype=np.float64)
            if not np.all(np.isfinite(b)):
                self._failed[i] = BAD_REEXPLANATION
                continue
            if absolute:
                a, b = np.abs(a), np.abs(b)
            out[r], const = rank_similarity(a, b)
            n_const += const
        if n_const:
            self.notes["n_constant"] = self.notes.get("n_constant", 0) + n_const
        return out

    def reexplain(self, ctx: Context, idx: list[int], targets: np.ndarray | None = None,
                  task: "Task | None" = None) -> list[np.ndarray]:
        """Explain examples ``idx`` again with the same per-example seeds (no extra seed parts)."""
        expl = ctx.reexplain(examples=[ctx.task.examples[i] for i in idx],
                             targets=ctx.targets[idx] if targets is None else targets, task=task)
        return expl.attributions


def other_class(target: int, n_classes: int, rng: np.random.Generator) -> int:
    """A class other than ``target``, uniformly among the n_classes − 1 others (for two classes, the other)."""
    if n_classes < 2:
        raise ValueError("random_logit needs at least two classes")
    k = int(rng.integers(n_classes - 1))
    return k + (k >= target)


class RandomLogit(_Sanity):
    """Random logit (Sixt et al. 2020): Spearman ρ of the explanations of the target and another class.

    Sixt et al., "When explanations lie: why many modified BP attributions fail", ICML 2020;
    Quantus ``RandomLogit`` with Spearman's ρ of the signed attributions as the similarity. ρ between the
    explanation of the target class y and that of another class y' — the other class of a binary
    task, else one drawn uniformly per example from a generator seeded by (task, metric, example,
    seed), the same for every explainer. Lower is better; for two classes, evidence for y is
    evidence against y', and an exact explanation of the softmax probability gives ρ = −1 (the
    ideal). Costs one re-explanation of every example. Constant explanations: ρ = 0 if one is
    constant, 1 if both are; one-feature examples fail (see :mod:`xbench.metrics.sanity`)."""

    name = "random_logit"
    ideal = -1.0
    formula = "ρ_S(a(x, y), a(x, y')),  y' ≠ y: the other class, or one drawn uniformly per example"

    def off_classes(self, ctx: Context, idx: list[int]) -> np.ndarray:
        C = int(ctx.task.model.num_labels)
        return np.array([other_class(int(ctx.targets[i]), C,
                                     np_rng(ctx.task.name, self.name, ctx.task.examples[i].id, ctx.seed))
                         for i in idx], dtype=np.int64)

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        return self.similarities(ctx, idx, self.reexplain(ctx, idx, targets=self.off_classes(ctx, idx)))


# -- model-parameter randomisation --------------------------------------------------------------

def _layer_stack(model: torch.nn.Module) -> str | None:
    """Name of the model's stack of blocks: the ``nn.ModuleList`` of 2+ entries holding the most
    parameters (``bert.encoder.layer``, ``distilbert.transformer.layer``, GPT-2's ``transformer.h``)."""
    best, best_n = None, 0
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.ModuleList) and len(m) >= 2:
            n = sum(p.numel() for p in m.parameters())
            if n > best_n:
                best, best_n = name, n
    return best


def layer_groups(model: torch.nn.Module) -> list[tuple[str, list[str]]]:
    """The model's parameters in layers, from the output down to the input: [(name, parameter names)].

    With a stack of blocks (see :func:`_layer_stack`): first the head — every parameter outside
    the Hugging Face ``base_model``, and those of the base model registered after the stack (BERT's
    pooler) — then each block from the top down, then everything registered before the stack (the
    embeddings). For BertForSequenceClassification with 2 layers: ``classifier+bert.pooler``,
    ``bert.encoder.layer.1``, ``bert.encoder.layer.0``, ``bert.embeddings``. Registration order is
    forward order in ``transformers`` models. Without a stack: the model's own parameters, then each
    top-level child, last registered first (the test LinearBag: ``bias``, then ``emb``).
    Every parameter is in exactly one group.
    """
    names = [n for n, _ in model.named_parameters()]
    base = getattr(model, "base_model", None)
    base_prefix = ""
    if isinstance(base, torch.nn.Module) and base is not model:
        base_prefix = next((n + "." for n, m in model.named_modules() if m is base and n), "")

    def unit(n: str) -> str:  # the top-level module (child of the base model, or of the model) of n
        if base_prefix and n.startswith(base_prefix):
            return base_prefix + n[len(base_prefix):].split(".")[0]
        return n.split(".")[0]

    def grouped(ns: list[str]) -> str:
        return "+".join(dict.fromkeys(unit(n) for n in ns))

    stack = _layer_stack(model)
    if stack is None:
        # torch lists a module's own parameters before its children's, whatever the order they
        # were assigned in; take the own ones (a final bias or scale, usually) as the top
        units: dict[str, list[str]] = {}
        for n in names:
            units.setdefault(unit(n), []).append(n)
        own = [n for n in names if "." not in n]  # the model's own parameters: their own units
        children = [u for u in units if u not in own][::-1]
        outside = [u for u in children if not (base_prefix and u.startswith(base_prefix))]
        order = own + outside + [u for u in children if u not in outside]
        return [(u, units[u]) for u in order]
    prefix = stack + "."
    blocks: dict[str, list[str]] = {}
    head, below = [], []
    for n in names:
        if n.startswith(prefix):
            blocks.setdefault(prefix + n[len(prefix):].split(".")[0], []).append(n)
        elif (base_prefix and not n.startswith(base_prefix)) or blocks:
            head.append(n)
        else:
            below.append(n)
    head = head[::-1]  # top first, so the name reads from the output down
    groups = [(grouped(head), head)] if head else []
    groups += [(b, ps) for b, ps in reversed(blocks.items())]
    if below:
        groups.append((grouped(below), below))
    return groups


def randomize_(model: torch.nn.Module, names: list[str], *seed_parts: object) -> None:
    """Re-draw the parameters ``names`` of ``model`` in place, each from N(mean, std) of its own values.

    Each tensor keeps its scale (so activations neither explode nor vanish) and loses what training
    put in it. A tensor's draw is seeded by (seed_parts, its name) through an explicit
    ``torch.Generator``, so the global RNG is untouched and a tensor gets the same values whichever
    other tensors are randomised with it. A constant tensor (std 0: e.g. an untrained LayerNorm or a
    zero bias) stays as it is.
    """
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n in names:
            p = params[n]
            if not p.is_floating_point():
                continue
            w = p.detach().double()
            mean, std = float(w.mean()), float(w.std(correction=0))
            new = torch.normal(mean, std, tuple(p.shape), generator=torch_gen(*seed_parts, n),
                               dtype=torch.float64)
            p.copy_(new.to(device=p.device, dtype=p.dtype))


class _Randomization(_Sanity):
    ideal = 0.0  # unrelated to the trained model's explanation
    #: rank |a| (Adebayo et al.'s "absolute value" variant; Quantus MPRT's default ``abs=True``):
    #: a randomised head often flips the sign of the whole explanation (signed ρ near −1, which
    #: would rank best) while the ranking of what matters, still set by the trained layers below,
    #: is unchanged. ``abs: false`` ranks the signed attributions.
    params = {"abs": True}

    def applies_to(self, task: "Task", explainer: "Explainer") -> bool:
        model = task.model.model
        return super().applies_to(task, explainer) and isinstance(model, torch.nn.Module) and \
            any(True for _ in model.parameters())

    def seed_parts(self, ctx: Context) -> tuple:
        """The random weights depend on (task, run seed, parameter name) only, not on the explainer
        or the metric: every explainer is tested against the same random model (a paired comparison),
        and the cascade's last stage is exactly the fully randomised model."""
        return (ctx.task.name, "model_randomization", ctx.seed)

    def randomised_task(self, ctx: Context) -> tuple["Task", torch.nn.Module]:
        """The task with a deep copy of its model (to be randomised in place), in a new adapter
        with the same tokenizer; its passes are counted apart from the original model's."""
        model = copy.deepcopy(ctx.task.model.model)
        return replace(ctx.task, model=ctx.task.model.with_model(model)), model

    def rho(self, ctx: Context, idx: list[int], task: "Task") -> np.ndarray:
        return self.similarities(ctx, idx, self.reexplain(ctx, idx, task=task), absolute=bool(self.p["abs"]))


class RandomizationCascade(_Randomization):
    """Cascading model randomisation (Adebayo et al. 2018): mean ρ of |a| as layers are re-drawn top-down.

    Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018; as Quantus ``MPRT`` with
    ``layer_order='top_down'`` and Spearman of |a|, with layers rather than single modules. The
    layers of a copy of the model are re-drawn cumulatively from the output down — the classifier
    head (with BERT's pooler), each encoder block from the top, then the embeddings
    (:func:`layer_groups`) — each parameter tensor from N(mean, std) of its trained values
    (:func:`randomize_`), and every example is explained again after each stage. The value is the
    mean over stages k ∈ K of ρ_S(|a_f(x)|, |a_{f_k}(x)|) (signed attributions with ``abs: false``);
    the stage names and per-stage means go to the notes. With more layer groups than ``max_stages``,
    explanations are taken after ``max_stages`` of the cumulative steps, evenly spaced, always the
    first (head only) and the last (everything randomised, the model of ``randomization_full``);
    randomisation itself stays cumulative over every group. Cost: one re-explanation of every
    example per stage — 4 for a 2-layer BERT (head, block 1, block 0, embeddings), at most
    ``max_stages`` — plus a copy of the model. Lower is better; ideal 0. Constant explanations:
    ρ = 0 if one of the two is constant, 1 if both are (an explainer that ignores the model keeps
    ρ = 1); one-feature examples fail (see :mod:`xbench.metrics.sanity`)."""

    name = "randomization_cascade"
    params = {"max_stages": 4, "abs": True}
    formula = ("1/|K| Σ_{k∈K} ρ_S(|a_f(x)|, |a_{f_k}(x)|),  f_k = f with its top k layer groups "
               "(head, blocks top-down, embeddings) re-drawn ~ N(mean, std) per tensor")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        m = self.p["max_stages"]
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise XBenchError(f"metric {self.name!r}: parameter 'max_stages' must be an integer >= 1, "
                              f"got {m!r}")

    def checkpoints(self, n_groups: int) -> list[int]:
        """Indices of the layer groups after which the model is explained again: ``max_stages`` of
        0..n_groups−1, evenly spaced, with the first and the last."""
        m = min(int(self.p["max_stages"]), n_groups)
        return sorted({int(round(k)) for k in np.linspace(0, n_groups - 1, m)})

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        rtask, model = self.randomised_task(ctx)
        groups = layer_groups(model)
        keep = set(self.checkpoints(len(groups)))
        per_stage, names = [], []
        for k, (gname, params) in enumerate(groups):
            randomize_(model, params, *self.seed_parts(ctx))
            if k in keep:
                per_stage.append(self.rho(ctx, idx, rtask))
                names.append(gname)
        rho = np.stack(per_stage)  # (stages, examples)
        ok = np.isfinite(rho).all(axis=0)
        self.notes.update(stages=names, cumulative=True,
                          mean_spearman_per_stage=[float(r[ok].mean()) if ok.any() else None for r in rho])
        return rho.mean(axis=0)


class RandomizationFull(_Randomization):
    """Full model randomisation (Adebayo et al. 2018): ρ of |a| against a model with every weight re-drawn.

    Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018, their fully randomised model;
    Spearman of |a| as in Quantus ``MPRT``. Every parameter tensor of a copy of the model re-drawn
    at once from N(mean, std) of its trained values (:func:`randomize_`; the same random model as
    the cascade's last stage), every example explained again, ρ_S(|a_f(x)|, |a_f̃(x)|) (signed with
    ``abs: false``). Cost: one re-explanation of every example, plus a copy of the model. Lower is
    better; ideal 0. Constant explanations: ρ = 0 if one of the two is constant, 1 if both are;
    one-feature examples fail (see :mod:`xbench.metrics.sanity`)."""

    name = "randomization_full"
    formula = "ρ_S(|a_f(x)|, |a_f̃(x)|),  f̃ = f with every parameter tensor re-drawn ~ N(mean, std)"

    def score_many(self, ctx: Context, idx: list[int], states) -> np.ndarray:
        rtask, model = self.randomised_task(ctx)
        randomize_(model, [n for n, _ in model.named_parameters()], *self.seed_parts(ctx))
        return self.rho(ctx, idx, rtask)
