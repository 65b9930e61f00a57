"""xbench's explainers on a causal LM against the peers' implementations of the same methods: inseq
(0.7.1) for saliency, input x gradient, Integrated Gradients and attention, captum's
``LLMAttribution(FeatureAblation)`` for occlusion.

Setup that makes the conventions coincide: a tiny random GPT-2 (float32, eager attention) and a
word-level tokenizer *without* a BOS, so every prompt token is a feature and xbench's baseline (the
replacement token at every feature position, ``replacement: unk``) is inseq's (``unk`` at every
non-EOS position) and captum's (``baselines=unk``). The attributed token is the model's greedy next
token (xbench's ``target: predicted``), passed to the peers as forced targets. Conventions aligned
through parameters:

- inseq's ``probability`` step function is p(y | x) (xbench ``explained_output: probability``), with
  ``logprob=True`` it is log p(y | x) (xbench ``explained_output: logit``);
- inseq saliency is |grad| per dimension, reduced by ``aggregate("vnorm", normalize=False)``: the L2
  norm over the embedding, xbench ``saliency`` with ``reduce: l2`` (L2 of |g| = L2 of g);
- inseq input x gradient and IG reduced by ``aggregate("sum", normalize=False)``: xbench's default
  ``reduce: sum``; IG with inseq's 50 Gauss-Legendre steps (xbench's default is 32);
- inseq's attention: the last prompt position's row per (layer, head); xbench's ``attention`` is the
  last layer's, mean over heads;
- captum's FeatureAblation attributes log p (``attr_target="log_prob"``, its default): xbench
  ``occlusion`` with ``explained_output: logit``; p (``attr_target="prob"``): ``probability``.

inseq mutates the tokenizer (padding side, pad token) and the model's config: it gets deep copies.
"""
from __future__ import annotations

import copy
import logging
import warnings

import numpy as np
import pytest
import torch

inseq = pytest.importorskip("inseq")  # imported once per module (~6 s)

from helpers_lm import KV_WORDS, word_tokenizer  # noqa: E402
from xbench.data.base import DatasetSource, Record, Splits  # noqa: E402
from xbench.explainers.base import Explainer  # noqa: E402
from xbench.tasks.catalogue import parse_task  # noqa: E402
from xbench.tasks.task import load_task  # noqa: E402

PROMPTS = ["k1 v3 , k2 v5 , ? k2", "k3 v1 , k1 v3 , k2 v5 , ? k1", "k2 v1 , k3 v5 , ? k3",
           "k1 v5 , k3 v3 , k2 v1 , ? k2"]
RTOL, ATOL = 1e-5, 1e-7  # float32 peers; ATOL is scaled by the largest score of the example
#: occlusion is a difference of two float32 scores (log p or p; xbench's output columns are float32 as
#: the peers'): its error is a few float32 ulps of the scores, whatever the difference's size;
#: ATOL_OCCLUSION is scaled by the largest score compared, at least 1 (measured: up to ~4.5 ulps)
ATOL_OCCLUSION = 8 * 2.0 ** -23


class CrosscheckPrompts(DatasetSource):
    """The key-value prompts above, no answers (the model's greedy token is explained)."""

    name = "test-kv-crosscheck"
    params: dict = {}

    def load(self, seed):
        recs = [Record(f"p{i}", p.split(), 0) for i, p in enumerate(PROMPTS)]
        return Splits(recs, recs, ["answer", "other"])


TASK = {"name": "kv-crosscheck", "modality": "lm", "replacement": "unk",
        "dataset": {"source": "test-kv-crosscheck"}, "model": {"source": "test-copy-lm"}}


@pytest.fixture(scope="module")
def lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    from xbench.core.seeding import isolated_global_rng

    tok = word_tokenizer(KV_WORDS, bos=False)
    assert tok("k1 v3").input_ids == [4, 5]  # no BOS: every token is a feature
    with isolated_global_rng(4):  # a seed whose greedy answers to PROMPTS are all words, no special token
        # initializer_range 0.2 (HF's 0.02 gives near-zero attributions on a random model)
        m = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=32,
                                       bos_token_id=2, eos_token_id=2, initializer_range=0.2,
                                       attn_implementation="eager")).float().eval()
    return m, tok


@pytest.fixture(scope="module")
def tasks(lm):
    m, tok = lm
    return {out: load_task(parse_task({**TASK, "explained_output": out}, "<crosscheck>"), model=(m, tok, {}))
            for out in ("logit", "probability")}


@pytest.fixture(scope="module")
def peers(lm):
    """inseq's models, one per method, on their own copies of the model and tokenizer."""
    m, tok = lm
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)  # inseq logs its set-up of every model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models = {meth: inseq.load_model(copy.deepcopy(m), meth, tokenizer=copy.deepcopy(tok))
                      for meth in ("saliency", "input_x_gradient", "integrated_gradients", "attention")}
    finally:
        logging.disable(before)
    return models


def _answer(ex) -> int:
    tid = int(ex.readout.answer[0])
    assert len(ex.readout.answer) == 1 and ex.n_prompt == ex.n_features  # next token, no special token
    return tid


def _full_text(tok, ex, tid) -> tuple[str, str]:
    prompt = " ".join(ex.features)
    full = prompt + " " + tok.convert_ids_to_tokens(tid)
    # the text inseq re-tokenizes is exactly the prompt's ids and the answer
    assert tok(full).input_ids == ex.input_ids[:ex.n_prompt].tolist() + [tid]
    return prompt, full


def _inseq(im, tok, ex, tid, **kw):
    """inseq's raw scores of the prompt's tokens for the forced next token ``tid`` (one prompt per call:
    batches are left-padded)."""
    prompt, full = _full_text(tok, ex, tid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = im.attribute(prompt, generated_texts=full, show_progress=False, **kw)
    return out.sequence_attributions[0]


def _xbench(task, name, **params) -> list[np.ndarray]:
    out = Explainer.registry.get(name)(**params).explain(task, task.examples, [0] * len(task.examples), 0)
    assert out.errors == [None] * len(task.examples)
    return out.attributions


def _close(ours: np.ndarray, ref: torch.Tensor, what: str, atol: float | None = None) -> None:
    ref = ref.detach().double().numpy()
    assert ours.shape == ref.shape, what
    atol = ATOL * max(1.0, float(np.abs(ref).max())) if atol is None else atol
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=atol, err_msg=what)
    assert np.abs(ref).max() > 1e-4, f"{what}: scores too small to compare"


def test_greedy_answers_are_words(tasks, lm):
    _, tok = lm
    for t in tasks.values():
        for ex in t.examples:
            tid = _answer(ex)
            with torch.no_grad():
                logits = lm[0](torch.from_numpy(ex.input_ids)[None]).logits[0, -1]
            assert tid == int(logits.argmax())
            assert tok.convert_ids_to_tokens(tid) in KV_WORDS  # not a special token: round-trips as text


# xbench method and params, inseq method, inseq aggregation
GRADIENT = [("saliency", {"reduce": "l2"}, "saliency", "vnorm"),
            ("input_x_gradient", {}, "input_x_gradient", "sum"),
            ("integrated_gradients", {"n_steps": 50, "method": "gausslegendre"}, "integrated_gradients", "sum")]


@pytest.mark.parametrize("output", ["probability", "logit"])
@pytest.mark.parametrize("name, params, method, agg", GRADIENT, ids=[g[0] for g in GRADIENT])
def test_gradient_methods_equal_inseq(tasks, peers, lm, output, name, params, method, agg):
    _, tok = lm
    t = tasks[output]
    ours = _xbench(t, name, **params)
    for ex, a in zip(t.examples, ours):
        sa = _inseq(peers[method], tok, ex, _answer(ex), attributed_fn="probability",
                    logprob=output == "logit")
        ref = sa.aggregate(agg, normalize=False).target_attributions[:ex.n_prompt, 0]
        _close(a, ref, f"{name} ({output}) on {ex.id}")


def test_attention_equals_inseq_last_layer(tasks, peers, lm):
    _, tok = lm
    t = tasks["logit"]
    for ex, a in zip(t.examples, _xbench(t, "attention")):
        sa = _inseq(peers["attention"], tok, ex, _answer(ex))
        raw = sa.target_attributions[:ex.n_prompt, 0]  # (keys, layers, heads)
        _close(a, raw[:, -1, :].mean(-1), f"attention on {ex.id}")


@pytest.mark.parametrize("output, attr_target", [("logit", "log_prob"), ("probability", "prob")])
def test_occlusion_equals_captum_llm_feature_ablation(tasks, lm, output, attr_target):
    from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

    m, tok = lm
    t = tasks[output]
    fa = LLMAttribution(FeatureAblation(copy.deepcopy(m)), copy.deepcopy(tok), attr_target=attr_target)
    for ex, a in zip(t.examples, _xbench(t, "occlusion")):
        tid = _answer(ex)
        prompt, _ = _full_text(tok, ex, tid)
        inp = TextTokenInput(prompt, tok, baselines=tok.unk_token_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = fa.attribute(inp, target=torch.tensor([tid]), use_cached_outputs=False)
        assert list(r.input_tokens) == ex.features
        # f(x) (log p or p); f(x without token i) = f(x) - a_i
        fx = float(t.model.outputs([ex.row()], output)[0, 0])
        scale = max(1.0, abs(fx), float(np.abs(fx - r.seq_attr.double().numpy()).max()))
        _close(a, r.seq_attr, f"occlusion ({output}) on {ex.id}", atol=ATOL_OCCLUSION * scale)
