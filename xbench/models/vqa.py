"""``train-vqa``: a small single-stream vision-language transformer for multimodal tasks, trained here
and cached.

Architecture (:class:`SceneQA`, ViLT's layout at toy scale)::

    image (3, H, W) - conv 3x3 (16) - relu - conv 3x3 (32) - relu - conv patch x patch, stride patch (d)
        -> (H/patch)(W/patch) image tokens + image position + type embedding 1
    question ids -> word embedding + position + type embedding 0  ([CLS] first)
    [text tokens ; image tokens] - n_layer pre-norm transformer blocks (n_head heads) - norm
    - linear on [CLS] -> answer logits

The forward signature is the multimodal adapter's contract (:class:`xbench.features.multimodal.
VisionLanguageClassifier`): ``forward(pixel_values, input_ids=None, attention_mask=None,
inputs_embeds=None)`` -> logits, with ``get_input_embeddings()``.

Training: AdamW with a one-cycle schedule, batch order and augmentation from ``torch.Generator``\\ s
seeded by the task's model seed, on :data:`xbench.models.loop.TRAIN_THREADS` threads. The
augmentation keeps the removal policies in distribution without looking at the gold: each question
word becomes ``[MASK]`` with probability ``mask_prob``, each ``patch`` x ``patch`` image cell becomes
0 with probability ``patch_drop``. Weights are cached as safetensors (never committed), keyed by the
training data's content, the architecture, the parameters and the seed, not by the task: the visual
and the language-prior task share one model. Held-out accuracy on the task's own test split is
measured on every load (a second at most) and held to ``min_accuracy``.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from xbench.core.errors import XBenchError
from xbench.models.base import ModelSource

TRAINER_VERSION = 1
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x)) (torch's MultiheadAttention)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None, need_weights: bool = False):
        h = self.ln1(x)
        a, w = self.attn(h, h, h, key_padding_mask=pad, need_weights=need_weights, average_attn_weights=False)
        x = x + a
        return x + self.mlp(self.ln2(x)), w


class SceneQA(nn.Module):
    """A single-stream transformer over question tokens and image patches (module docstring)."""

    def __init__(self, vocab_size: int, n_answers: int, image_shape: tuple[int, int, int], patch: int = 4,
                 d: int = 64, n_layer: int = 2, n_head: int = 4, max_text: int = 16, pad_id: int = 0) -> None:
        super().__init__()
        c, h, w = image_shape
        self.patch, self.pad_id, self.num_labels = patch, pad_id, n_answers
        self.stem = nn.Sequential(nn.Conv2d(c, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(32, d, patch, stride=patch))
        n_img = (h // patch) * (w // patch)
        self.word = nn.Embedding(vocab_size, d)
        self.text_pos = nn.Parameter(torch.randn(max_text, d) * 0.02)
        self.image_pos = nn.Parameter(torch.randn(n_img, d) * 0.02)
        self.modality = nn.Embedding(2, d)
        self.blocks = nn.ModuleList(Block(d, n_head) for _ in range(n_layer))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, n_answers)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                output_attentions: bool = False) -> Any:
        emb = self.word(input_ids) if inputs_embeds is None else inputs_embeds
        n, t, _ = emb.shape
        if t > self.text_pos.shape[0]:
            raise XBenchError(f"train-vqa: a question of {t} tokens is longer than the model's {self.text_pos.shape[0]}")
        text = emb + self.text_pos[:t] + self.modality.weight[0]
        img = self.stem(pixel_values.to(emb.dtype)).flatten(2).transpose(1, 2) + self.image_pos + self.modality.weight[1]
        x = torch.cat([text, img], dim=1)
        pad = None
        if attention_mask is not None:
            pad = torch.cat([attention_mask == 0, torch.zeros(n, img.shape[1], dtype=torch.bool,
                                                              device=attention_mask.device)], dim=1)
        weights = []
        for b in self.blocks:
            x, w = b(x, pad, output_attentions)
            weights.append(w)
        logits = self.head(self.norm(x[:, 0]))
        return (logits, tuple(weights)) if output_attentions else logits


def vqa_tokenizer(words: list[str], max_length: int) -> Any:
    """A word-level tokenizer over the dataset's question words: ``[CLS] question``."""
    from xbench.models.text_train import word_tokenizer

    return word_tokenizer(list(words), SPECIALS, "[CLS] $A", "[CLS] $A [SEP] $B", max_length,
                          unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                          mask_token="[MASK]")


def batch_ids(tokenizer: Any, records: list, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer([r.words for r in records], is_split_into_words=True, truncation=True, max_length=max_length,
                    padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def predict(model: nn.Module, x: np.ndarray, ids: torch.Tensor, att: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model(torch.from_numpy(x[i:i + batch_size]), ids[i:i + batch_size],
                             att[i:i + batch_size]).argmax(-1).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.int64)


class TrainVQA(ModelSource):
    """:class:`SceneQA` trained on the task's training split, cached by content (module docstring)."""

    name = "train-vqa"
    seeded = True
    params = {"d": 64, "n_layer": 2, "n_head": 4, "patch": 4, "epochs": 12, "lr": 0.002, "batch_size": 64,
              "weight_decay": 0.01, "mask_prob": 0.1, "patch_drop": 0.05, "max_length": 16}

    def load(self, task: Any, splits: Any) -> tuple[nn.Module, Any, dict]:
        from xbench.core.cache import cache_dir, content_key
        from xbench.core.seeding import isolated_global_rng
        from xbench.models.dense_train import load_cached, save_cached
        from xbench.models.text_train import check_min_accuracy

        if not splits.train:
            raise XBenchError(f"{task.path}: model 'train-vqa' needs training examples")
        p = self.p
        for r in splits.train[:1] + splits.test[:1]:
            if not isinstance(r.image, np.ndarray):
                raise XBenchError(f"{task.path}: model 'train-vqa' trains on in-memory images (dataset "
                                  f"'vqa-shapes'); example {r.id} has {type(r.image).__name__}")
        shape = tuple(int(s) for s in splits.train[0].image.shape)
        if len(shape) != 3 or shape[1] % p["patch"] or shape[2] % p["patch"]:
            raise XBenchError(f"{task.path}: field 'model.params.patch': {p['patch']} must divide the image "
                              f"sides, images are {shape}")
        words = sorted({w for r in splits.train for w in r.words})
        tok = vqa_tokenizer(words, int(p["max_length"]))
        arch = {"name": "SceneQA", "vocab": words, "n_answers": len(splits.label_names), "image_shape": list(shape),
                **{k: p[k] for k in ("patch", "d", "n_layer", "n_head", "max_length")}}
        train = {k: p[k] for k in ("epochs", "lr", "batch_size", "weight_decay", "mask_prob", "patch_drop")}
        x_tr = np.stack([r.image for r in splits.train]).astype(np.float32)
        y_tr = np.array([r.label for r in splits.train], dtype=np.int64)
        data = content_key([x_tr.tobytes(), y_tr.tobytes(), [r.words for r in splits.train]])
        key = content_key({"data": data, "arch": arch, "train": train, "seed": task.model.seed,
                           "trainer": TRAINER_VERSION, "torch": torch.__version__.split("+")[0]})
        path = cache_dir("models", f"vqa-{key}")

        def build() -> SceneQA:
            with isolated_global_rng(task.model.seed):
                return SceneQA(len(tok), len(splits.label_names), shape, int(p["patch"]), int(p["d"]),
                               int(p["n_layer"]), int(p["n_head"]), int(p["max_length"]), int(tok.pad_token_id))

        model = build()
        meta = load_cached(path, model)
        hit = meta is not None
        if not hit:
            t0 = time.perf_counter()
            ids, att = batch_ids(tok, splits.train, int(p["max_length"]))
            with isolated_global_rng(task.model.seed):
                self.fit(model, x_tr, y_tr, ids, att, tok, seed_parts=(self.name, task.model.seed))
            meta = {"train_seconds": round(time.perf_counter() - t0, 2), "n_train": len(y_tr),
                    "seed": task.model.seed, "arch": arch, "train": train,
                    "n_parameters": int(sum(q.numel() for q in model.parameters()))}
            save_cached(path, model, meta)
        model.eval()
        acc, by_type = self.held_out(model, tok, splits, int(p["max_length"]))
        meta = {**meta, "test_accuracy": acc, "test_accuracy_by_question": by_type, "n_test": len(splits.test),
                "cache": "hit" if hit else "miss", "cache_path": str(path)}
        check_min_accuracy(task, acc)
        for q in model.parameters():
            q.requires_grad_(False)
        return model, tok, meta

    @staticmethod
    def held_out(model: nn.Module, tok: Any, splits: Any, max_length: int) -> tuple[float, dict[str, float]]:
        """Accuracy on the test split, overall and per question type."""
        recs = splits.test
        if not recs:
            return float("nan"), {}
        x = np.stack([np.asarray(r.image, dtype=np.float32) for r in recs])
        ids, att = batch_ids(tok, recs, max_length)
        hit = predict(model, x, ids, att) == np.array([r.label for r in recs])
        types = np.array([r.meta.get("question_type", "?") for r in recs])
        return float(hit.mean()), {str(t): round(float(hit[types == t].mean()), 4) for t in sorted(set(types))}

    def fit(self, model: SceneQA, x: np.ndarray, y: np.ndarray, ids: torch.Tensor, att: torch.Tensor, tok: Any,
            seed_parts: tuple) -> None:
        from xbench.core.seeding import torch_gen
        from xbench.models.loop import fit

        p = self.p
        gen = torch_gen(*seed_parts, "batches")
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        words = (att > 0) & (ids != tok.cls_token_id)
        mask_id, patch = int(tok.mask_token_id), int(p["patch"])
        gh, gw = x.shape[2] // patch, x.shape[3] // patch
        opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
        steps = max(1, p["epochs"] * -(-len(y) // p["batch_size"]))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p["lr"], total_steps=steps, pct_start=0.2)
        model.train()

        def loss_of(idx: torch.Tensor) -> torch.Tensor:
            b_ids, b_att, b_x = ids[idx], att[idx], xt[idx]
            hit = (torch.rand(b_ids.shape, generator=gen) < p["mask_prob"]) & words[idx]
            b_ids = torch.where(hit, mask_id, b_ids)
            drop = torch.rand((len(idx), 1, gh, gw), generator=gen) < p["patch_drop"]
            keep = (~drop).repeat_interleave(patch, 2).repeat_interleave(patch, 3)
            return nn.functional.cross_entropy(model(b_x * keep, b_ids, b_att), yt[idx])

        fit(len(y), int(p["epochs"]), int(p["batch_size"]), gen, opt, sched, loss_of)
        model.eval()
