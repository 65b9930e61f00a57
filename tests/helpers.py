"""Test helpers: a linear bag-of-words classifier whose exact answers are known on paper.

The model's logit for class c is  b_c + Σ_{attended tokens j} W[id_j, c],  with W = 0 for
special and replacement tokens. So removing word w lowers logit c by exactly W[w, c], its
exact attribution (leave-one-out, input x gradient, Integrated Gradients and SHAP all equal
it), and every faithfulness metric can be computed by hand.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from xbench.data.base import DatasetSource, Record, Splits
from xbench.explainers.base import Explanations
from xbench.metrics.scoring import score_explanations
from xbench.models.base import ModelSource
from xbench.models.bert import build_word_tokenizer

# class-1 weight of each word (class 0 weights are all zero)
WEIGHTS = {"great": 2.0, "fine": 1.0, "the": 0.0, "bad": -1.0, "film": 0.0, "plot": 0.0}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class LinearBag(torch.nn.Module):
    """logits = bias + sum of per-token weight rows over attended tokens; optional fixed attentions."""

    def __init__(self, tokenizer, weights: dict[str, float], bias: float = 0.0):
        super().__init__()
        vocab = len(tokenizer)
        w = torch.zeros(vocab, 2, dtype=torch.float32)
        for word, v in weights.items():
            w[tokenizer.convert_tokens_to_ids(word), 1] = v
        self.emb = torch.nn.Embedding(vocab, 2)
        self.emb.weight.data.copy_(w)
        self.bias = torch.nn.Parameter(torch.tensor([0.0, bias]))
        self.config = SimpleNamespace(num_labels=2)
        self.fixed_attentions = None

    def get_input_embeddings(self):
        return self.emb

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, token_type_ids=None,
                output_attentions=False):
        e = self.emb(input_ids) if inputs_embeds is None else inputs_embeds
        if attention_mask is None:
            attention_mask = torch.ones(e.shape[:2], dtype=torch.long)
        logits = (e * attention_mask[..., None].to(e.dtype)).sum(1) + self.bias
        att = self.fixed_attentions if output_attentions else None
        return SimpleNamespace(logits=logits, attentions=att)


class FixedRecords(DatasetSource):
    """Test dataset: the same four sentences as train and test (one may have an empty rationale)."""

    name = "test-records"
    params = {"empty_rationale": False}

    def load(self, seed):
        recs = [
            Record("a", "great fine the bad".split(), 1, [1, 1, 0, 0]),
            Record("b", "the film great plot".split(), 1, [0, 0, 1, 0]),
            Record("c", "bad the plot".split(), 0, [1, 0, 0]),
            Record("d", "fine film bad great the".split(), 1, [1, 0, 0, 1, 0]),
        ]
        if self.p["empty_rationale"]:
            recs[2] = Record("c", "bad the plot".split(), 0, [0, 0, 0])
        return Splits(recs, recs, ["neg", "pos"])


class LinearSource(ModelSource):
    """Test model source: the LinearBag model over a word-level tokenizer of WEIGHTS' words.
    With ``seed_noise`` > 0, model seed s adds seed_noise * N(0, 1) (seeded by s) to each weight."""

    name = "test-linear"
    params = {"bias": 0.0, "seed_noise": 0.0, "special_weights": None}
    seeded = True

    def load(self, task, splits):
        tok = build_word_tokenizer(list(WEIGHTS), task.max_length)
        weights = seeded_weights(task.model.seed, self.p["seed_noise"])
        weights.update(self.p["special_weights"] or {})  # e.g. distinct weights for [MASK], [UNK], [PAD]
        return LinearBag(tok, weights, self.p["bias"]), tok, {"test_accuracy": None}


def seeded_weights(seed: int, noise: float) -> dict[str, float]:
    if noise == 0:
        return dict(WEIGHTS)
    rng = np.random.default_rng(seed)
    return {w: v + noise * float(rng.normal()) for w, v in WEIGHTS.items()}


LINEAR_TASK = {
    "name": "linear", "modality": "text", "granularity": "tokens", "replacement": "mask",
    "rationale": True, "max_length": 16,
    "dataset": {"source": "test-records"}, "model": {"source": "test-linear"},
}


def fixed_explanations(task, attrs) -> Explanations:
    n = len(attrs)
    z = np.zeros(n)
    return Explanations("fixed", {}, [ex.id for ex in task.examples[:n]],
                        [np.asarray(a, dtype=np.float64) for a in attrs], z, z.astype(int), z.astype(int))


def run_metric(task, metric, explainer=None, targets=None, seed=0, expl=None):
    """(values, errors, context) of one metric on ``task``: ``explainer`` explains every example (or
    ``expl`` is given), then the public plan -> engine -> score path scores it."""
    targets = np.array(targets if targets is not None else [1] * len(task.examples))
    if expl is None:
        expl = explainer.explain(task, task.examples, targets.tolist(), seed)
    (planned,) = score_explanations(task, [expl], [metric], targets, seed, [explainer])
    assert planned.results, f"metric {metric.name} does not apply here ({planned.not_applicable})"
    (result,) = planned.results
    return result.values, result.errors, planned.context


def score(task, metric, attrs, targets=None, engine=None):
    """Per-example values and errors of ``metric`` for the attributions ``attrs`` (one per example),
    through the public plan -> engine -> score function."""
    task.examples = task.examples[:len(attrs)]
    targets = np.array(targets if targets is not None else [1] * len(attrs))
    (planned,) = score_explanations(task, [fixed_explanations(task, attrs)], [metric], targets, engine=engine)
    (result,) = planned.results
    return result.values, result.errors


def shared_data(name: str):
    """The path of a data set under ../shared/data (or $XBENCH_DATA), or None where it is absent:
    tests that need it skip."""
    from xbench.data.base import resolve_data_path
    from xbench.core.errors import XBenchError

    try:
        return resolve_data_path(name)
    except XBenchError:
        return None
