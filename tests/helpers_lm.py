"""Test helpers for generative tasks: a hand-set one-layer attention model that copies a value, whose
answers are known on paper, and a word-level tokenizer with a BOS token.

:class:`CopyLM` embeds tokens one-hot (E = I) and has one hard attention head: position t attends to
every earlier position s whose *previous* token equals token t (an induction head), and its logits are
β times the one-hot of the attended tokens:

    logits_t = β Σ_{1 ≤ s ≤ t, attended} [x_{s-1} = x_t] · onehot(x_s)

On a key-value prompt ``[BOS] k1 v3 , k2 v5 , ? k2`` the last position (the query key k2) attends to v5,
the value after the context's k2, so  log p(v5) = β − log(e^β + V − 1)  and every other token has
log-probability −log(e^β + V − 1). Masking the context's k2, or the query, leaves no match (uniform:
log p = −log V); masking v5 moves the mass onto [MASK] (log p(v5) = −log(e^β + V − 1)); the
distractor pairs change nothing.
"""
from __future__ import annotations

from types import SimpleNamespace

import torch

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[MASK]"]


def word_tokenizer(words, chat_template: str | None = None, bos: bool = True):
    """A word-level fast tokenizer over ``SPECIALS`` and ``words``; it puts ``[BOS]`` before a text
    unless ``bos=False`` (then every token of a prompt is a feature: the peers' cross-checks)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bos:
        tk.post_processor = processors.TemplateProcessing(single="[BOS] $A", special_tokens=[("[BOS]", 2)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]",
                                  mask_token="[MASK]")
    if chat_template:
        tok.chat_template = chat_template
    return tok


class CopyLM(torch.nn.Module):
    """The hand-set induction-head model of the module docstring (HF causal-LM interface)."""

    def __init__(self, vocab_size: int, beta: float = 4.0, n_positions: int = 64) -> None:
        super().__init__()
        self.beta = beta
        self.emb = torch.nn.Embedding(vocab_size, vocab_size)
        self.emb.weight.data.copy_(torch.eye(vocab_size))
        self.lm_head = torch.nn.Linear(vocab_size, vocab_size, bias=False)
        self.lm_head.weight.data.copy_(torch.eye(vocab_size))
        self.config = SimpleNamespace(vocab_size=vocab_size, n_positions=n_positions, _attn_implementation="eager")

    def get_input_embeddings(self):
        return self.emb

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, use_cache=None,
                output_attentions=False):
        e = self.emb(input_ids) if inputs_embeds is None else inputs_embeds
        N, L, _ = e.shape
        prev = torch.cat([torch.zeros_like(e[:, :1]), e[:, :-1]], 1)  # x_{s-1}
        scores = e @ prev.transpose(1, 2)  # (N, t, s) = <x_t, x_{s-1}>
        causal = torch.tril(torch.ones(L, L, dtype=e.dtype))
        att = torch.ones(N, L, dtype=e.dtype) if attention_mask is None else attention_mask.to(e.dtype)
        scores = scores * causal * att[:, None, :]
        logits = self.beta * self.lm_head(scores @ e)
        attn = None
        if output_attentions:
            w = scores / scores.sum(-1, keepdim=True).clamp_min(1e-12)
            attn = (w[:, None],)
        return SimpleNamespace(logits=logits, attentions=attn)


# -- a task around it ---------------------------------------------------------------------------
from xbench.data.base import DatasetSource, Record, Splits  # noqa: E402
from xbench.models.base import ModelSource  # noqa: E402

KV_WORDS = ["k1", "v3", ",", "k2", "v5", "k3", "v1", "?"]
BETA = 4.0


class KVRecords(DatasetSource):
    """Two key-value prompts; the answer is the queried value, the foil another context value."""

    name = "test-kv-records"
    params = {"answer": None, "foil": None, "question_segment": False}

    def load(self, seed):
        a = Record("a", "k1 v3 , k2 v5 , ? k2".split(), 0, [0, 0, 0, 1, 1, 0, 0, 0],
                   meta={"answer": self.p["answer"] or "v5", "foil": self.p["foil"] or "v3"})
        if self.p["question_segment"]:  # the query as a second segment
            a = Record("a", a.words[:6], 0, a.rationale, words_b=a.words[6:], meta=a.meta)
        b = Record("b", "k3 v1 , k1 v3 , k2 v5 , ? k1".split(), 0, [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0],
                   meta={"answer": "v3", "foil": "v1"})
        return Splits([a, b], [a, b], ["answer", "other"])


class CopySource(ModelSource):
    name = "test-copy-lm"
    params = {"beta": BETA}

    def load(self, task, splits):
        tok = word_tokenizer(KV_WORDS, "{% for m in messages %}<{{ m.role }}> {{ m.content }} </{{ m.role }}> "
                                       "{% endfor %}{% if add_generation_prompt %}<assistant> {% endif %}")
        return CopyLM(len(tok), self.p["beta"]), tok, {"test_accuracy": None}


COPY_TASK = {"name": "copy-kv", "modality": "lm", "rationale": True, "replacement": "mask",
             "dataset": {"source": "test-kv-records"}, "model": {"source": "test-copy-lm"}}
