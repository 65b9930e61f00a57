"""Multimodal test helpers: a hand-set vision-language model whose answers are on paper, and a tiny
real ``vqa-shapes`` task for integration tests.

``LinearVL`` (two classes) has class-1 logit

    z = Σ_{c,h,w} W[h, w] · x[c, h, w]  +  Σ_t u[id_t] · att_t,      class-0 logit 0,

so p = σ(z). With a one-dimensional word embedding (``u`` is the embedding table), removing an image
patch lowers z by the patch's W-weighted pixel sum (zero baseline), and replacing a word by [MASK]
changes z by u[MASK] − u[word]. On the 4x4, 3-channel all-ones image with W = ``W_IMG`` (2x2
patches summing, per channel, to 1, 0, 0, 0.5: top-left, top-right, bottom-left, bottom-right) and
the question "is red ?" with u = 0 for "is", "?" and [MASK], 2 for "red", everything is known:
z(full) = 3 · 1.5 + 2 = 6.5.
"""
from __future__ import annotations

import numpy as np
import torch

from xbench.data.base import DatasetSource, MultimodalRecord, Splits
from xbench.models.base import ModelSource

W_IMG = np.array([[0.5, 0.5, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 0.0],
                  [0.0, 0.0, 0.25, 0.25],
                  [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
#: per channel, each 2x2 patch's W sum (row-major patches)
PATCH_SUMS = np.array([1.0, 0.0, 0.0, 0.5])
WORDS = ["is", "red", "?"]
WORD_WEIGHT = {"red": 2.0}
GOLD_MASK = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.int8)


def tokenizer():
    from xbench.models.vqa import vqa_tokenizer

    return vqa_tokenizer(WORDS, 8)


class LinearVL(torch.nn.Module):
    """The model of the module docstring, with the multimodal adapter's forward signature."""

    num_labels = 2

    def __init__(self, tok, w_img: np.ndarray = W_IMG, word_weight: dict | None = None) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.from_numpy(np.asarray(w_img, np.float32)))
        u = torch.zeros(len(tok), 1)
        for word, val in (WORD_WEIGHT if word_weight is None else word_weight).items():
            u[tok.convert_tokens_to_ids(word), 0] = val
        self.word = torch.nn.Embedding(len(tok), 1)
        self.word.weight.data.copy_(u)
        self.image_shape = (3, *np.asarray(w_img).shape)

    def get_input_embeddings(self):
        return self.word

    def forward(self, pixel_values, input_ids=None, attention_mask=None, inputs_embeds=None):
        emb = self.word(input_ids) if inputs_embeds is None else inputs_embeds
        att = torch.ones(emb.shape[:2], dtype=emb.dtype) if attention_mask is None else attention_mask.to(emb.dtype)
        z = (pixel_values * self.w).sum((1, 2, 3)) + (emb[..., 0] * att).sum(1)
        return torch.stack([torch.zeros_like(z), z], dim=1)


class MiniVQA(DatasetSource):
    """Two examples: the all-ones 4x4 RGB image and a half-ones one, question "is red ?", gold the
    top-left patch and the word "red"."""

    name = "test-mini-vqa"
    params = {"image": "array"}

    def load(self, seed):
        xs = [np.ones((3, 4, 4), np.float32), np.concatenate([np.ones((3, 4, 2)), np.zeros((3, 4, 2))], 2)]
        recs = [MultimodalRecord(f"m{i}", x.astype(np.float32), list(WORDS), 1, GOLD_MASK, [0, 1, 0])
                for i, x in enumerate(xs)]
        return Splits(recs, recs, ["no", "yes"], {"shape": [3, 4, 4]})


class LinearVLSource(ModelSource):
    name = "test-linear-vl"
    params = {}

    def load(self, task, splits):
        tok = tokenizer()
        return LinearVL(tok), tok, {}


MINI_TASK = {
    "name": "mini-vqa", "modality": "multimodal", "replacement": "zero+mask", "patch": 2, "rationale": True,
    "explained_output": "logit", "max_length": 8,
    "dataset": {"source": "test-mini-vqa"}, "model": {"source": "test-linear-vl"},
}

#: a real vqa-shapes task with a model trained for one epoch on 600 scenes (seconds); no accuracy bar
TINY_VQA_TASK = {
    "name": "tiny-vqa", "modality": "multimodal", "replacement": "zero+mask", "patch": 4, "rationale": True,
    "missing_rationale": "skip", "max_length": 16,
    "dataset": {"source": "vqa-shapes", "params": {"n_train": 600, "n_test": 40}},
    "model": {"source": "train-vqa", "params": {"epochs": 1, "d": 32, "n_layer": 1}},
}
