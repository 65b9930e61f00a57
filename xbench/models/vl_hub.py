"""Pretrained vision-language models from the Hub (or a local folder) behind the multimodal adapter's
contract (:class:`xbench.features.multimodal.VisionLanguageClassifier`: ``forward(pixel_values,
input_ids=None, attention_mask=None, inputs_embeds=None)`` -> (N, C) logits, ``get_input_embeddings()``,
``num_labels``, ``image_shape``).

Loading is :class:`xbench.models.hub.HubModel`'s (``name`` a Hub id or a local folder, ``revision``,
``trust_remote_code`` off unless the task turns it on, "needs network" offline unless cached, every
failure one line naming ``model.params.name``; ``model.safetensors`` where the repository has it, as
``from_pretrained`` prefers), with the checkpoint's model type checked before its weights are read.
The tokenizer the modality gets is a :class:`VLProcessor`: the checkpoint's tokenizer and image
processor.

- ``hub-vilt-vqa`` (``dandelin/vilt-b32-finetuned-vqa``): ``ViltForQuestionAnswering``. Every image is
  first resized to ``image_size`` x ``image_size`` (bicubic, antialiased; param, default 384, a
  multiple of the model's patch size) and the image processor asked for that shortest edge, so
  ViLT's aspect-preserving resize keeps it square and every example has the same patch grid. The
  pixel mask is all ones. The outputs are the model's whole answer vocabulary (``config.id2label``,
  3,129 answers): each example's label, an answer of the dataset's (``splits.label_names``), becomes
  its index in the vocabulary (compared lower-cased, whitespace collapsed); an example whose answer
  is not in the vocabulary is dropped before the run's examples are taken, and counted in the model
  info (``answers``). ViLT's patch sampling (``max_image_length``; with -1, the default, it only
  shuffles the order of the patches, which the output does not depend on) runs on a fixed seed in a
  forked random state, so outputs are reproducible and the global random state is untouched.
- ``hub-clip-zero-shot`` (``openai/clip-vit-base-patch32``): ``CLIPModel`` as a zero-shot classifier
  over the dataset's candidate captions (``hub-image-classes``: one caption per class, all of them one
  after another as the example's text). The wrapper cuts the token sequence ``[start] caption_1 ...
  caption_K [end]`` back into K sequences ``[start] caption_k [end]`` by the captions' token counts and
  scores each as CLIP does: ``logit_scale.exp() * cos(image embedding, caption embedding)``, the
  caption pooled at its end token. CLIP's text model takes no ``inputs_embeds``: the wrapper gathers
  the captions' embeddings itself and hands them to the text model through a forward hook on its
  token embedding (the ids passed alongside only place the pooling), so gradients reach the word
  embeddings and the text model's own attention masks apply. Text removal policies: ``pad`` (the
  removed token becomes ``<|endoftext|>`` with attention 0) and ``unk`` (``<|endoftext|>`` attended);
  ``mask`` needs a mask token, which CLIP's tokenizer lacks, and ``delete`` would shift the caption
  boundaries: both are refused in one line. With a logit target, only the target class's caption (and
  the image) can change its logit: the other captions' words score 0 by construction.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from xbench.core.errors import XBenchError
from xbench.models.hub import HubModel

TEXT_TOKENS = {"mask": "mask_token_id", "unk": "unk_token_id", "pad": "pad_token_id"}


@dataclass
class VLProcessor:
    """What the multimodal modality takes as its tokenizer: a text tokenizer and an image processor."""

    tokenizer: Any
    image_processor: Any


class SquareImages:
    """An image processor that first resizes each (H, W, C) image in [0, 1] to ``side`` x ``side`` (bicubic,
    antialiased, clipped to [0, 1]) and asks ``inner`` for that shortest edge."""

    def __init__(self, inner: Any, side: int) -> None:
        self.inner, self.side = inner, int(side)

    def __call__(self, images: list, **kw: Any) -> Any:
        out = []
        for im in images:
            a = np.asarray(im, dtype=np.float32)
            if a.ndim != 3 or a.shape[-1] != 3:
                raise ValueError(f"expected an RGB image (H, W, 3), got shape {a.shape}")
            if a.shape[:2] != (self.side, self.side):
                t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 0)))[None]
                t = nn.functional.interpolate(t, size=(self.side, self.side), mode="bicubic", antialias=True,
                                              align_corners=False).clamp(0, 1)
                a = t[0].permute(1, 2, 0).numpy()
            out.append(a)
        return self.inner(images=out, size={"shortest_edge": self.side}, **kw)

    def __repr__(self) -> str:
        return f"SquareImages({type(self.inner).__name__}, side={self.side})"


class Checkpoint:
    """What :meth:`HubModel.pretrained` calls ``from_pretrained`` on: checks the checkpoint's model type,
    loads its image processor with the same options (kept as ``image_processor``), then the model."""

    def __init__(self, model_class: Any, model_type: str) -> None:
        self.model_class, self.model_type = model_class, model_type
        self.image_processor: Any = None

    def from_pretrained(self, target: str, **kw: Any) -> Any:
        from transformers import AutoConfig, AutoImageProcessor

        common = {k: kw[k] for k in ("revision", "local_files_only", "trust_remote_code") if k in kw}
        config = AutoConfig.from_pretrained(target, **common)
        if config.model_type != self.model_type:
            arch = ", ".join(getattr(config, "architectures", None) or []) or config.model_type
            raise ValueError(f"a {config.model_type} checkpoint ({arch}), not {self.model_type}")
        self.image_processor = AutoImageProcessor.from_pretrained(target, **common)
        return self.model_class.from_pretrained(target, **kw)


@contextmanager
def fixed_rng(device: torch.device) -> Iterator[None]:
    """Random draws on ``device`` from a fixed seed, the random state before restored afterwards."""
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(0)
            yield
    elif device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[idx]):
            torch.cuda.default_generators[idx].manual_seed(0)
            yield
    else:
        yield


def text_policy(task: Any, tokenizer: Any, where: str, name: str, refuse: dict[str, str] | None = None) -> str:
    """The text half of the task's ``replacement``, checked against the tokenizer (one line if the
    tokenizer lacks its token) and against ``refuse`` (policy -> why not)."""
    policy = str(task.replacement).split("+")[-1]
    if refuse and policy in refuse:
        raise XBenchError(f"{where}: field 'replacement': text policy {policy!r} does not work with {name}: "
                          f"{refuse[policy]}")
    attr = TEXT_TOKENS.get(policy)
    if attr and getattr(tokenizer, attr) is None:
        ok = [p for p, a in TEXT_TOKENS.items() if getattr(tokenizer, a) is not None and p not in (refuse or {})]
        raise XBenchError(f"{where}: field 'replacement': the tokenizer of {name} has no {policy} token; use "
                          f"another text policy ({', '.join(ok) or 'none available'})")
    return policy


class ViltVQA(nn.Module):
    """``ViltForQuestionAnswering`` behind the multimodal contract: a pixel mask of ones, the answer
    logits out (module docstring)."""

    def __init__(self, vilt: nn.Module, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.vilt = vilt
        self.num_labels = int(vilt.config.num_labels)
        self.image_shape = tuple(int(s) for s in image_shape)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.vilt.get_input_embeddings()

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        n, _, h, w = pixel_values.shape
        mask = torch.ones((n, h, w), dtype=torch.long, device=pixel_values.device)
        with fixed_rng(pixel_values.device):
            out = self.vilt(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                            pixel_mask=mask, inputs_embeds=inputs_embeds)
        return out.logits


class CLIPZeroShot(nn.Module):
    """``CLIPModel`` scoring an image against K captions that arrive as one token sequence (module
    docstring); ``lengths`` are the captions' token counts, without start and end tokens."""

    def __init__(self, clip: nn.Module, lengths: list[int], image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.clip = clip
        self.lengths = [int(x) for x in lengths]
        self.num_labels = len(self.lengths)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.seq_len = 2 + sum(self.lengths)
        k, width = len(self.lengths), max(self.lengths) + 2
        gather = torch.zeros(k, width, dtype=torch.long)  # sequence position of each caption's tokens
        valid = torch.zeros(k, width, dtype=torch.long)
        eos = int(clip.text_model.eos_token_id)
        legacy = eos == 2  # CLIP's old configs pool at the largest id (transformers keeps that rule)
        fill, at_end = (0, 1) if legacy else ((1 if eos == 0 else 0), eos)
        place = torch.full((k, width), fill, dtype=torch.long)  # ids that put the pooling at each caption's end
        start = 1
        for j, n in enumerate(self.lengths):
            gather[j, 1:n + 1] = torch.arange(start, start + n)
            gather[j, n + 1] = self.seq_len - 1
            valid[j, :n + 2] = 1
            place[j, n + 1] = at_end
            start += n
        self.register_buffer("gather", gather, persistent=False)
        self.register_buffer("valid", valid, persistent=False)
        self.register_buffer("place", place, persistent=False)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.clip.text_model.embeddings.token_embedding

    def text_features(self, embeds: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """Projected caption embeddings (N*K, P) of caption token embeddings (N*K, W, D): the text model
        runs on them (a hook replaces its token embedding's output), pooled at each caption's end."""
        layer = self.get_input_embeddings()
        handle = layer.register_forward_hook(lambda module, args, output: embeds)
        try:
            ids = self.place.repeat(embeds.shape[0] // self.num_labels, 1)
            out = self.clip.text_model(input_ids=ids, attention_mask=attention)
        finally:
            handle.remove()
        return self.clip.text_projection(out.pooler_output)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.get_input_embeddings()(input_ids) if inputs_embeds is None else inputs_embeds
        n, t, d = emb.shape
        if t != self.seq_len:
            raise XBenchError(f"hub-clip-zero-shot: a text of {t} tokens is not the {self.num_labels} captions' "
                              f"{self.seq_len} (the captions are found by their token counts)")
        att = torch.ones((n, t), dtype=torch.long, device=emb.device) if attention_mask is None else attention_mask
        k, width = self.gather.shape
        caps = emb[:, self.gather].reshape(n * k, width, d)
        cap_att = (att[:, self.gather].long() * self.valid).reshape(n * k, width)
        text = self.text_features(caps, cap_att).reshape(n, k, -1)
        pooled = self.clip.vision_model(pixel_values=pixel_values.to(emb.dtype)).pooler_output
        image = self.clip.visual_projection(pooled)
        image = image / image.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        return self.clip.logit_scale.exp() * torch.einsum("np,nkp->nk", image, text)


def answer_key(answer: Any) -> str:
    return " ".join(str(answer).lower().split())


def to_vocabulary(splits: Any, vocab: list[str], where: str, name: str) -> dict[str, Any]:
    """Relabel the splits' records by the model's answer vocabulary (module docstring), in place:
    records whose answer is not in it are dropped; ``label_names`` become the vocabulary."""
    index: dict[str, int] = {}
    for i, a in enumerate(vocab):
        index.setdefault(answer_key(a), i)
    dropped: Counter = Counter()
    n = {}
    for split in ("train", "test"):
        kept = []
        for r in getattr(splits, split):
            a = splits.label_names[r.label]
            j = index.get(answer_key(a))
            if j is None:
                dropped[str(a)] += 1
            else:
                kept.append(dataclasses.replace(r, label=j))
        n[split] = len(kept)
        setattr(splits, split, kept)
    if not splits.test:
        some = ", ".join(map(repr, list(dropped)[:3]))
        raise XBenchError(f"{where}: field 'model.params.name': no test example's answer is in the answer "
                          f"vocabulary of {name!r} ({len(vocab)} answers; the dataset's include {some})")
    splits.label_names = list(vocab)
    summary = {"vocabulary": len(vocab), "examples_kept": n["test"] + n["train"],
               "examples_dropped_not_in_vocabulary": int(sum(dropped.values())),
               "answers_not_in_vocabulary": dict(dropped.most_common(20)),
               "matched_by": "lower-cased, whitespace collapsed"}
    splits.info["answers"] = summary
    return summary


class HubViltVQA(HubModel):
    """ViLT fine-tuned for VQA, over its whole answer vocabulary (module docstring)."""

    name = "hub-vilt-vqa"
    params = {"name": "dandelin/vilt-b32-finetuned-vqa", "revision": None, "trust_remote_code": False,
              "image_size": 384}

    def load(self, task: Any, splits: Any) -> tuple[nn.Module, VLProcessor, dict]:
        from transformers import ViltForQuestionAnswering

        where = task.path or "<task>"
        side = self.p["image_size"]
        if isinstance(side, bool) or not isinstance(side, int) or side <= 0:
            raise XBenchError(f"{where}: field 'model.params.image_size' must be a positive integer; got {side!r}")
        ckpt, missing = Checkpoint(ViltForQuestionAnswering, "vilt"), set()
        model, tok, local = self.pretrained(task, ckpt, missing)
        fresh = sorted(k for k in missing if not k.startswith(f"{model.base_model_prefix}."))
        if fresh:
            saved = ", ".join(getattr(model.config, "architectures", None) or []) or "another architecture"
            raise XBenchError(f"{where}: field 'model.params.name': {self.p['name']!r} has no VQA head (a {saved} "
                              f"checkpoint: {fresh[0]}{f' and {len(fresh) - 1} more' if len(fresh) > 1 else ''} "
                              f"would be random)")
        cfg = model.config
        if side % int(cfg.patch_size):
            raise XBenchError(f"{where}: field 'model.params.image_size': {side} is not a multiple of the model's "
                              f"patch size {cfg.patch_size}")
        self._check_tokenizer(tok, model, task, where)
        text_policy(task, tok, where, repr(self.p["name"]))
        vocab = [str(cfg.id2label[i]) for i in range(cfg.num_labels)]
        answers = to_vocabulary(splits, vocab, where, self.p["name"])
        wrapper = ViltVQA(model, (int(cfg.num_channels), side, side)).eval()
        processor = VLProcessor(tok, SquareImages(ckpt.image_processor, side))
        info = {**self.describe_model(model, tok, local), "image_processor": type(ckpt.image_processor).__name__,
                "image_shape": list(wrapper.image_shape), "answers": answers}
        return wrapper, processor, info


class HubCLIPZeroShot(HubModel):
    """CLIP as a zero-shot classifier over the dataset's captions (module docstring)."""

    name = "hub-clip-zero-shot"
    params = {"name": "openai/clip-vit-base-patch32", "revision": None, "trust_remote_code": False}
    REFUSED = {"delete": "the captions are found in the text by their token counts, which deleting tokens "
                         "changes; use pad (the removed token unattended) or unk"}

    def load(self, task: Any, splits: Any) -> tuple[nn.Module, VLProcessor, dict]:
        from transformers import CLIPModel

        where = task.path or "<task>"
        words = splits.info.get("caption_words")
        if not (isinstance(words, list) and len(words) == len(splits.label_names)
                and all(isinstance(c, list) and c for c in words)):
            raise XBenchError(f"{where}: field 'dataset.source': model 'hub-clip-zero-shot' needs one candidate "
                              f"caption per class from the dataset (source 'hub-image-classes'); "
                              f"{task.dataset.source!r} gives none")
        if str(task.replacement).split("+")[-1] in self.REFUSED:  # before the weights are read
            text_policy(task, None, where, "hub-clip-zero-shot", self.REFUSED)
        ckpt, missing = Checkpoint(CLIPModel, "clip"), set()
        model, tok, local = self.pretrained(task, ckpt, missing)
        if missing:
            raise XBenchError(f"{where}: field 'model.params.name': {self.p['name']!r} lacks CLIP weights "
                              f"({sorted(missing)[0]}{f' and {len(missing) - 1} more' if len(missing) > 1 else ''} "
                              f"would be random)")
        self._check_tokenizer(tok, model, task, where)
        text_policy(task, tok, where, repr(self.p["name"]), self.REFUSED)
        lengths = [len(tok(c, is_split_into_words=True, add_special_tokens=False)["input_ids"]) for c in words]
        total = 2 + sum(lengths)
        tc = model.config.text_config
        bounds = {"max_length": task.max_length, "the text model's positions": tc.max_position_embeddings}
        what, bound = min(bounds.items(), key=lambda kv: kv[1])
        if total > bound:
            raise XBenchError(f"{where}: field 'dataset.params.template': the {len(words)} captions take {total} "
                              f"tokens with the start and end tokens; {what} allows {bound}")
        flat = [w for c in words for w in c]
        for r in splits.train + splits.test:
            if list(r.words) != flat:
                raise XBenchError(f"{where}: example {r.id}: field 'words': the text is not the dataset's "
                                  f"{len(words)} captions one after another")
        enc = tok(flat, is_split_into_words=True)
        wid = enc.word_ids()
        if len(enc["input_ids"]) != total or wid[0] is not None or wid[-1] is not None or None in wid[1:-1]:
            raise XBenchError(f"{where}: field 'model.params.name': the tokenizer of {self.p['name']!r} does not "
                              f"encode the captions as one start token, their tokens, one end token")
        vc = model.config.vision_config
        wrapper = CLIPZeroShot(model, lengths, (int(vc.num_channels), int(vc.image_size), int(vc.image_size))).eval()
        processor = VLProcessor(tok, ckpt.image_processor)
        info = {**self.describe_model(model, tok, local), "image_processor": type(ckpt.image_processor).__name__,
                "image_shape": list(wrapper.image_shape), "captions": [" ".join(c) for c in words],
                "caption_tokens": lengths}
        return wrapper, processor, info
