"""The multimodal modality: an image and a text (a question, a caption) explained in one feature space.

Features are the image's square patches (``patch`` x ``patch`` pixels, row-major; the task's
``patch`` field, default max(1, side // 6)) followed by the text's tokens or words, as the text
modality makes them (special tokens are never features). Every example records which *part* each
feature belongs to (``parts``: 0 = image, 1 = text; :data:`PARTS`), so metrics can restrict
themselves to one modality (:mod:`xbench.metrics.modality`) and the report can tell them apart.

Each part is removed by its own policy, named together in the task's ``replacement`` as
``<image policy>+<text policy>`` (default ``zero+mask``) and recorded with every result:

- image: ``zero``, ``mean`` (each channel's mean), ``blur`` (Gaussian, sigma = side / 8), exactly the
  image modality's (:func:`xbench.features.image.image_baseline`), applied to whole patches;
- text: ``mask``, ``unk``, ``pad``, ``delete`` in token-id space, exactly the text modality's
  (:func:`xbench.features.text.materialize`).

The model is a ``torch.nn.Module`` behind :class:`VisionLanguageClassifier`, whose contract is
``model(pixel_values, input_ids=..., attention_mask=..., inputs_embeds=...)`` -> (N, C) logits (or an
output with ``.logits``) and ``get_input_embeddings()``: the model trained here
(:class:`xbench.models.vqa.SceneQA`) has it, and the Hub wrappers (:mod:`xbench.models.vl_hub`) give
it to ViLT and CLIP. Gradient explainers attribute both inputs at once (captum's multi-input form:
``inputs = (pixels, word embeddings)``); a pixel's score is summed over its channels and a patch's
over its pixels, a token's over its embedding.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from xbench.core.errors import XBenchError
from xbench.data.base import Record
from xbench.features.image import POLICIES as IMAGE_POLICIES
from xbench.features.image import image_baseline
from xbench.features.protocol import Modality, PassCounter
from xbench.features.text import POLICIES as TEXT_POLICIES
from xbench.features.text import TextExample, TextRemoval, encode_records, materialize

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime

#: the parts of a multimodal example, by index (``MultimodalExample.parts``)
PARTS = ("image", "text")
REPLACEMENTS = tuple(f"{i}+{t}" for i in IMAGE_POLICIES for t in TEXT_POLICIES)


def patch_grid(h: int, w: int, patch: int) -> tuple[np.ndarray, int, int]:
    """(pixel -> patch id over the (h, w) image, rows, columns of the patch grid)."""
    rows, cols = np.divmod(np.arange(h * w), w)
    n_cols, n_rows = -(-w // patch), -(-h // patch)
    return (rows // patch) * n_cols + cols // patch, n_rows, n_cols


@dataclass
class MultimodalExample:
    """An image (model pixel input ``x``, its removal ``baseline``) and a text (``text``, a
    :class:`~xbench.features.text.TextExample` whose features are numbered 0..T-1), in one feature
    space: the image's patches first (``n_image`` of them), then the text's features.

    ``feature_ids`` maps every input position (the H*W pixels, then the text's tokens) to its
    feature, -1 for special tokens; ``parts[j]`` is feature j's part (0 image, 1 text)."""

    id: str
    x: np.ndarray
    baseline: np.ndarray
    text: TextExample
    label: int
    features: list[str]
    pixel_feature: np.ndarray
    n_image: int
    rationale: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    truth: None = None
    token_type_ids: None = None
    truncated: bool = False

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def input_ids(self) -> np.ndarray:
        return self.text.input_ids

    @cached_property
    def parts(self) -> np.ndarray:
        p = np.ones(self.n_features, dtype=np.int8)
        p[:self.n_image] = 0
        return p

    def part_mask(self, part: str) -> np.ndarray:
        """Boolean mask over the features of one part ('image' or 'text')."""
        return self.parts == PARTS.index(part)

    @cached_property
    def feature_ids(self) -> np.ndarray:
        t = self.text.feature_ids
        return np.concatenate([self.pixel_feature, np.where(t >= 0, t + self.n_image, -1)])

    def digest(self) -> bytes:
        return self.x.tobytes() + self.baseline.tobytes() + self.text.digest()

    def images(self, keep: np.ndarray) -> np.ndarray:
        """(m, C, H, W) images for the keep-masks ``keep`` (m, F): removed patches take the baseline."""
        pix = keep[:, self.pixel_feature].reshape(len(keep), 1, *self.x.shape[1:])
        return np.where(pix, self.x[None], self.baseline[None]).astype(np.float32)


class MultimodalRemoval:
    """The image policy on patches and the text policy on tokens (module docstring); rows are
    ``(example, keep)``, materialised by the adapter batch by batch."""

    def __init__(self, name: str, tokenizer: Any) -> None:
        self.name = name
        self.image, text = name.split("+")
        self.text = TextRemoval(text, tokenizer)

    def baseline(self, x: np.ndarray) -> np.ndarray:
        return image_baseline(x, self.image)

    def apply(self, ex: MultimodalExample, keep: np.ndarray) -> tuple[list, list[bytes]]:
        keep = np.asarray(keep, dtype=bool).reshape(-1, ex.n_features)
        head = ex.id.encode() + b"|"
        return [(ex, k) for k in keep], [head + np.packbits(k).tobytes() for k in keep]

    def text_rows(self, ex: MultimodalExample, keep: np.ndarray) -> list:
        return materialize(ex.text, keep[:, ex.n_image:], self.text.name, self.text.token_id)

    def describe(self) -> dict[str, Any]:
        what = {"zero": "0 everywhere", "mean": "each channel's mean over the image",
                "blur": "the image under a Gaussian blur, sigma = max(H, W) / 8"}[self.image]
        return {"replacement": self.name, "image": {"replacement": self.image, "unit": "patch", "baseline": what},
                "text": self.text.describe()}


class VisionLanguageClassifier(PassCounter):
    """A vision-language classifier (module docstring) behind the adapter protocol: batched outputs on
    removal rows (questions right-padded per batch), gradients on (pixels, word embeddings)."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, removal: MultimodalRemoval | None = None,
                 batch_size: int = 256, runtime: "Runtime | None" = None) -> None:
        from xbench.core.device import Runtime

        self.runtime = runtime or Runtime()
        self.model = self.runtime.place(model).eval()
        self.tokenizer = tokenizer
        self.removal = removal
        self.batch_size = self.runtime.batch_size or batch_size
        self.n_forward = 0
        self.n_backward = 0
        n = getattr(model, "num_labels", None) or getattr(getattr(model, "config", None), "num_labels", None)
        self.num_labels = int(n)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        for p in self.model.parameters():
            p.requires_grad_(False)

    provides = frozenset({"gradients"})

    @property
    def device(self) -> torch.device:
        return self.runtime.torch_device

    def with_model(self, model: torch.nn.Module) -> "VisionLanguageClassifier":
        return VisionLanguageClassifier(model, self.tokenizer, self.removal, self.batch_size, self.runtime)

    def logits(self, pixel_values: torch.Tensor, input_ids: torch.Tensor | None = None,
               attention_mask: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
               n_real: int | None = None) -> torch.Tensor:
        dt = self.runtime.torch_dtype or pixel_values.dtype
        out = self.model(pixel_values=pixel_values.to(device=self.device, dtype=dt), input_ids=input_ids,
                         attention_mask=attention_mask, inputs_embeds=inputs_embeds)
        out = out.logits if hasattr(out, "logits") else out
        return self.counted(out, n_real, attention_mask)

    def outputs(self, rows: Sequence[tuple[Any, np.ndarray]], kind: str = "logit", min_rows: int = 0) -> np.ndarray:
        """Logits or probabilities for ``(example, keep)`` rows; a batch of fewer than ``min_rows`` is
        filled up with copies of its first row (outputs dropped, not counted)."""
        rows, n = self.fill(rows, min_rows)
        images, texts, start = [], [], 0
        for end in range(1, len(rows) + 1):  # each example's rows in one vectorised call
            if end == len(rows) or rows[end][0] is not rows[start][0]:
                ex = rows[start][0]
                keep = np.stack([k for _, k in rows[start:end]])
                images.append(ex.images(keep))
                texts += self.removal.text_rows(ex, keep)
                start = end
        x = np.concatenate(images)
        out = []
        with torch.no_grad():
            for b in range(0, len(x), self.batch_size):
                chunk = texts[b:b + self.batch_size]
                L = max(len(t[0]) for t in chunk)
                ids = np.full((len(chunk), L), self.pad_id, dtype=np.int64)
                att = np.zeros((len(chunk), L), dtype=np.int64)
                for i, (a, mk, _) in enumerate(chunk):
                    ids[i, :len(a)], att[i, :len(a)] = a, mk
                dev = self.device
                lg = self.logits(torch.from_numpy(np.ascontiguousarray(x[b:b + self.batch_size])),
                                 torch.from_numpy(ids).to(dev), torch.from_numpy(att).to(dev),
                                 n_real=max(0, n - b))[:max(0, n - b)].float()
                out.append((torch.softmax(lg, -1) if kind == "probability" else lg).cpu().numpy())
        return np.concatenate(out)[:n] if out else np.zeros((0, self.num_labels), np.float32)

    def probs(self, rows: Sequence[tuple[Any, np.ndarray]]) -> np.ndarray:
        return self.outputs(rows, "probability")

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids.to(self.device))

    def grad_inputs(self, ex: MultimodalExample, removal: MultimodalRemoval) -> tuple[tuple, tuple, tuple]:
        """((pixels, word embeddings) requiring grad, (baseline image, the replacement token's
        embeddings at every removable position), (attention mask,)), batch of one."""
        dev = self.device
        ids = torch.from_numpy(ex.text.input_ids)[None].to(dev)
        base_ids = torch.where(torch.from_numpy(ex.text.feature_ids >= 0)[None].to(dev),
                               int(removal.text.token_id), ids)
        with torch.no_grad():
            emb, base = self.embed(ids), self.embed(base_ids)
        x = torch.from_numpy(ex.x)[None].clone().to(dev).requires_grad_()
        return (x, emb.requires_grad_()), (torch.from_numpy(ex.baseline)[None].to(dev), base), (torch.ones_like(ids),)

    def grad_forward(self, probability: bool):
        def f(pixels: torch.Tensor, embeds: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
            logits = self.logits(pixels, inputs_embeds=embeds, attention_mask=att)
            return torch.softmax(logits, -1) if probability else logits

        return f

    @staticmethod
    def reduce_grad(attr: tuple, how: str = "sum") -> np.ndarray:
        """Per-position scores: each pixel's summed over channels (l2: its norm over channels), then each
        token's summed over the embedding (l2: its norm); pixels first (module docstring)."""
        img, emb = attr[0].detach()[0].double(), attr[1].detach()[0].double()
        pix = img.norm(dim=0) if how == "l2" else img.sum(0)
        tok = emb.norm(dim=-1) if how == "l2" else emb.sum(-1)
        return np.concatenate([pix.reshape(-1).cpu().numpy(), tok.cpu().numpy()])


def image_array(value: Any, where: str) -> np.ndarray:
    """A (C, H, W) float32 array from an array, a PIL image or an image file's path."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        from pathlib import Path

        path = Path(value)
        if not path.is_file():
            raise XBenchError(f"{where}: field 'image': file {str(path)!r} not found")
        from PIL import Image

        try:
            with Image.open(path) as im:
                value = im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
        except OSError as e:
            raise XBenchError(f"{where}: field 'image': {path} is not an image ({e})") from None
    if hasattr(value, "mode") and hasattr(value, "size"):  # a PIL image
        a = np.asarray(value, dtype=np.float32) / 255.0
        return (a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)).astype(np.float32)
    raise XBenchError(f"{where}: field 'image' must be an array, a PIL image or a file path, "
                      f"got {type(value).__name__}")


class MultimodalModality(Modality):
    """An image and a text classified together: features are image patches and text tokens/words."""

    name = "multimodal"
    replacements = REPLACEMENTS
    provides = frozenset({"gradients"})
    fields = ("patch",)

    def removal(self, splits: Any, tokenizer: Any) -> MultimodalRemoval:
        return MultimodalRemoval(self.spec.replacement, text_tokenizer(tokenizer))

    def patch_side(self, h: int, w: int) -> int:
        return int(self.spec.patch) if self.spec.patch else max(1, max(h, w) // 6)

    def encode(self, records: list, splits: Any, tokenizer: Any, removal: MultimodalRemoval) -> list[MultimodalExample]:
        spec, out = self.spec, []
        tok = text_tokenizer(tokenizer)
        processor = getattr(tokenizer, "image_processor", None)
        for r in records:
            where = f"{spec.path}: example {r.id}"
            words = [w for w in (r.words or []) if str(w).strip()]
            if not words:
                raise XBenchError(f"{where}: field 'words': the question (text) is empty")
            raw = image_array(r.image, where)
            if raw.ndim != 3:
                raise XBenchError(f"{where}: field 'image': must be (C, H, W), got shape {raw.shape}")
            x = raw if processor is None else processed(processor, raw, where)
            c, h, w = x.shape
            side = self.patch_side(h, w)
            pix, n_rows, n_cols = patch_grid(h, w, side)
            n_img = n_rows * n_cols
            text = encode_records([Record(r.id, list(words), int(r.label), r.rationale)], tok, spec)[0]
            names = [f"patch r{i}c{j}" for i in range(n_rows) for j in range(n_cols)] + list(text.features)
            rat = None
            if r.mask is not None or r.rationale is not None:
                gold_img = np.zeros(n_img, dtype=np.int8)
                if r.mask is not None:
                    m = np.asarray(r.mask).astype(bool)
                    if m.shape != raw.shape[1:]:
                        raise XBenchError(f"{where}: field 'mask': gold mask is {m.shape}, image is {raw.shape[1:]}")
                    if m.shape != (h, w):  # the processor resized the image: the mask follows (nearest)
                        m = resize_mask(m, h, w)
                    np.maximum.at(gold_img, pix[m.reshape(-1)], 1)
                gold_txt = text.rationale if text.rationale is not None else np.zeros(text.n_features, np.int8)
                rat = np.concatenate([gold_img, gold_txt]).astype(np.int8)
            meta = dict(r.meta)
            meta.setdefault("patch", side)
            out.append(MultimodalExample(r.id, x, removal.baseline(x), text, int(r.label), names, pix, n_img,
                                         rat, meta, truncated=text.truncated))
        return out

    def adapter(self, model: Any, tokenizer: Any, splits: Any, runtime: "Runtime") -> VisionLanguageClassifier:
        return VisionLanguageClassifier(model, text_tokenizer(tokenizer),
                                        MultimodalRemoval(self.spec.replacement, text_tokenizer(tokenizer)),
                                        runtime=runtime)

    def bind(self, examples: list, adapter: VisionLanguageClassifier) -> list:
        """Check the examples against the model: image channels and size, the tokenizer's vocabulary."""
        model, spec = adapter.model, self.spec
        want = getattr(model, "image_shape", None)
        emb = model.get_input_embeddings()
        n_vocab = len(adapter.tokenizer)
        if emb is not None and n_vocab > emb.num_embeddings:
            raise XBenchError(f"{spec.path}: field 'model': the processor does not match the model: its tokenizer "
                              f"has {n_vocab} tokens, the model's embedding {emb.num_embeddings}")
        for ex in examples:
            if want is not None and tuple(ex.x.shape) != tuple(want):
                raise XBenchError(f"{spec.path}: example {ex.id}: field 'image': image is {tuple(ex.x.shape)} "
                                  f"(C, H, W), the model takes {tuple(want)}")
        return examples

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]:
        c: dict[str, Any] = {"features": "image patches, then text " + self.spec.granularity,
                             "image_pooling": "sum over a patch's pixels (and channels)"}
        if space == "input":
            c["embedding_reduction"] = reduce
        return c

    def view(self, ex: MultimodalExample) -> tuple[dict[str, Any], dict[str, Any]]:
        """The image as display colours (at most 96 pixels a side, nearest), each displayed pixel's
        feature, and each feature's part."""
        c, h, w = ex.x.shape
        step = max(1, -(-max(h, w) // 96))
        img = ex.x[:, ::step, ::step]
        lo = img.min(axis=(1, 2), keepdims=True)
        hi = img.max(axis=(1, 2), keepdims=True)
        z = (img - lo) / np.where(hi > lo, hi - lo, 1.0)
        rgb = np.repeat(z, 3, 0) if c == 1 else z[:3]
        q = np.clip(np.round(rgb * 255), 0, 255).astype(int).reshape(3, -1).T
        pix = ex.pixel_feature.reshape(h, w)[::step, ::step]
        return {}, {"image": {"h": int(pix.shape[0]), "w": int(pix.shape[1]),
                              "pixels": ["#%02x%02x%02x" % tuple(v) for v in q]},
                    "pixel_feature": [int(v) for v in pix.reshape(-1)],
                    "parts": [PARTS[int(p)] for p in ex.parts]}


    def view_model(self, examples: list, adapter: VisionLanguageClassifier, removal: MultimodalRemoval,
                   targets: np.ndarray) -> list[dict[str, Any]]:
        """Each example's modality contributions: the exact two-player Shapley values φ_I, φ_T of the
        target's probability and the model's text share T (:func:`modality_shares`)."""
        out = []
        for ex, t in zip(examples, targets):
            phi_i, phi_t, share = modality_shares(ex, adapter, removal, int(t))
            out.append({"phi_image": round(phi_i, 6), "phi_text": round(phi_t, 6),
                        "model_text_share": None if np.isnan(share) else round(share, 6)})
        return out


def modality_keeps(ex: MultimodalExample) -> np.ndarray:
    """The keep-masks of the four coalitions of the players image and text: (∅, I, T, IT)."""
    img = ex.part_mask("image")
    return np.stack([np.zeros(ex.n_features, bool), img, ~img, np.ones(ex.n_features, bool)])


def shapley_two(v_none: float, v_image: float, v_text: float, v_both: float) -> tuple[float, float]:
    """(φ_I, φ_T): the exact Shapley values of the two players image and text for the game v:

    φ_T = ½ [(v(T) − v(∅)) + (v(IT) − v(I))],   φ_I = ½ [(v(I) − v(∅)) + (v(IT) − v(T))]."""
    phi_t = 0.5 * ((v_text - v_none) + (v_both - v_image))
    phi_i = 0.5 * ((v_image - v_none) + (v_both - v_text))
    return phi_i, phi_t


def text_share_of(phi_i: float, phi_t: float) -> float:
    """T = |φ_T| / (|φ_T| + |φ_I|) (NaN when both are 0)."""
    d = abs(phi_t) + abs(phi_i)
    return abs(phi_t) / d if d > 0 else float("nan")


def modality_shares(ex: MultimodalExample, adapter: Any, removal: Any, target: int) -> tuple[float, float, float]:
    """(φ_I, φ_T, T) of one example: the target's softmax probability with each coalition present and
    the other modality removed by the task's policy (four forward passes)."""
    rows, _ = removal.apply(ex, modality_keeps(ex))
    v = adapter.outputs(rows, "probability")[:, target].astype(np.float64)
    phi_i, phi_t = shapley_two(*v)
    return phi_i, phi_t, text_share_of(phi_i, phi_t)


def text_tokenizer(tokenizer: Any) -> Any:
    """The tokenizer itself, or a processor's (``processor.tokenizer``)."""
    return getattr(tokenizer, "tokenizer", tokenizer)


def processed(processor: Any, raw: np.ndarray, where: str) -> np.ndarray:
    """The processor's pixel values for one (C, H, W) image in [0, 1]."""
    img = np.moveaxis(raw, 0, -1)
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, -1)
    try:
        out = processor(images=[img], return_tensors="np", do_rescale=False)
    except Exception as e:  # noqa: BLE001 - the processor's own message, on one line
        raise XBenchError(f"{where}: field 'image': the image processor failed: {str(e).splitlines()[0]}") from None
    return np.asarray(out["pixel_values"][0], dtype=np.float32)


def resize_mask(m: np.ndarray, h: int, w: int) -> np.ndarray:
    ys = (np.arange(h) * m.shape[0] // h).clip(0, m.shape[0] - 1)
    xs = (np.arange(w) * m.shape[1] // w).clip(0, m.shape[1] - 1)
    return m[ys][:, xs]
