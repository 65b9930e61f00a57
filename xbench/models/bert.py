"""``train-bert``: a small BERT trained locally, deterministically, and cached on disk.

The tokenizer is a word-level ``tokenizers`` model built from the training words;
the model is a ``transformers`` ``BertForSequenceClassification`` built from a
``BertConfig``. Weights are saved as safetensors under the xbench cache, keyed by
the dataset and model specs, and are never committed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from xbench.core.seeding import isolated_global_rng, torch_gen
from xbench.models.base import ModelSource
from xbench.models.loop import fit
from xbench.models.text_train import word_tokenizer, trained_meta, accuracy, check_min_accuracy, mask_tokens, maskable, model_cache_path, save_trained

__all__ = ["TrainBert", "accuracy", "build_word_tokenizer"]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TRAINER_VERSION = 3  # 2: trained on loop.TRAIN_THREADS threads; 3: [MASK] blind to the rationale


def build_word_tokenizer(words: list[str], model_max_length: int):
    """A fast word-level tokenizer with BERT's special tokens, over ``words``."""
    return word_tokenizer(words, SPECIALS, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", model_max_length,
                          unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                          mask_token="[MASK]")


class TrainBert(ModelSource):
    """A small BERT trained from scratch on the task's training split."""

    name = "train-bert"
    seeded = True
    params = {
        "hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
        "epochs": 4, "lr": 2e-3, "batch_size": 64, "weight_decay": 0.01,
        # share of words replaced by [MASK] in training (chosen without looking at the rationale), so
        # that the replacement token is in-distribution when metrics use it
        "mask_prob": 0.1,
        # dropout on hidden states and attention probabilities (BERT's 0.1); 0 trains about 30% faster
        # on the CPU (drawing the masks is a quarter of a step for these small models)
        "dropout": 0.1,
    }

    def load(self, task, splits) -> tuple[Any, Any, dict]:
        import transformers
        from transformers import BertForSequenceClassification

        transformers.logging.disable_progress_bar()

        # content-addressed: the training data itself, the resolved parameters, the trainer
        path = model_cache_path(task, splits, params=self.p, seed=task.model.seed, max_length=task.max_length,
                                trainer=TRAINER_VERSION, torch=torch.__version__.split("+")[0])
        meta = trained_meta(path, task, lambda: self._train_into(path, task, splits))
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
        model = BertForSequenceClassification.from_pretrained(str(path), use_safetensors=True,
                                                              attn_implementation="eager")
        model.eval()
        return model, tokenizer, meta

    def _train_into(self, path: Path, task, splits) -> None:
        from transformers import BertConfig, BertForSequenceClassification

        p, seed = self.p, task.model.seed
        tokenizer = build_word_tokenizer([w for r in splits.train for w in r.words], task.max_length)
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=p["hidden_size"], num_hidden_layers=p["num_layers"],
            num_attention_heads=p["num_heads"], intermediate_size=p["intermediate_size"],
            max_position_embeddings=max(64, task.max_length), num_labels=len(splits.label_names),
            pad_token_id=tokenizer.pad_token_id, attn_implementation="eager",
            hidden_dropout_prob=p["dropout"], attention_probs_dropout_prob=p["dropout"],
            id2label=dict(enumerate(splits.label_names)),
            label2id={n: i for i, n in enumerate(splits.label_names)},
        )
        t0 = time.perf_counter()
        enc = tokenizer([r.words for r in splits.train], is_split_into_words=True, truncation=True,
                        max_length=task.max_length, padding=True, return_tensors="pt")
        labels = torch.tensor([r.label for r in splits.train])
        gen = torch_gen("train-bert", task.name, seed, "batches")
        allowed = maskable(enc, splits.train)
        with isolated_global_rng(seed):  # transformers' init and dropout draw from the global RNG
            model = BertForSequenceClassification(config)
            opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
            steps = p["epochs"] * ((len(labels) + p["batch_size"] - 1) // p["batch_size"])
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p["lr"], total_steps=steps,
                                                        pct_start=0.1)
            model.train()

            def loss_of(idx: torch.Tensor) -> torch.Tensor:
                ids = mask_tokens(enc["input_ids"][idx], allowed[idx], p["mask_prob"], tokenizer.mask_token_id, gen)
                return model(input_ids=ids, attention_mask=enc["attention_mask"][idx], labels=labels[idx]).loss

            fit(len(labels), p["epochs"], p["batch_size"], gen, opt, sched, loss_of)
        train_s = time.perf_counter() - t0
        model.eval()
        acc = accuracy(model, tokenizer, splits.test, task.max_length)
        check_min_accuracy(task, acc)
        save_trained(path, model, tokenizer, {"test_accuracy": acc, "train_seconds": round(train_s, 2),
                                              "n_train": len(labels), "seed": seed, "params": p})
