"""Test helpers for the Hub vision-language tasks (tasks/vilt-vqav2.yaml, tasks/clip-cifar10.yaml): tiny
randomly initialised ``ViltForQuestionAnswering`` and ``CLIPModel`` checkpoints with real tokenizers
and image processors, laid out as their Hub repositories are, and Parquet datasets in the Hub schemas
of ``lmms-lab/VQAv2`` and ``uoft-cs/cifar10``. Nothing is downloaded; everything is written into the
test's tmp path.

- ViLT (``dandelin/vilt-b32-finetuned-vqa``): config.json + model.safetensors (``save_pretrained``),
  vocab.txt and the ``BertTokenizerFast`` built from it (lower-casing, [PAD] [UNK] [CLS] [SEP] [MASK]
  first, model_max_length 40), saved as tokenizer.json / tokenizer_config.json, and the repository's
  preprocessor_config.json in its own (feature-extractor era) format: ``ViltFeatureExtractor``, an int
  ``size`` (the shortest edge), ``size_divisor`` 32, mean = std = 0.5, bicubic;
- CLIP (``openai/clip-vit-base-patch32``): config.json (text ``eos_token_id`` 2, CLIP's original
  configs' value, which makes transformers pool at the largest token id) + model.safetensors,
  vocab.json and merges.txt of a byte-level BPE with CLIP's ``</w>`` word ends, ``<|startoftext|>`` and
  ``<|endoftext|>`` the last two ids (``CLIPTokenizer`` built from those two files, saved too), and
  preprocessor_config.json as the repository has it (``CLIPFeatureExtractor``, int ``size`` and
  ``crop_size``, CLIP's mean and std, bicubic);
- VQAv2: data/validation-00000-of-00001.parquet with lmms-lab's features (question_type,
  multiple_choice_answer, answers [{answer, answer_confidence, answer_id}], image_id, answer_type,
  question_id, question, image: an Image);
- CIFAR-10: plain_text/{train,test}-00000-of-00001.parquet (img: an Image of 32x32 PNG bytes, label:
  a ClassLabel airplane .. truck) and the README.md whose YAML names the config and its files.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
#: the VQA fixture's answer vocabulary (the model's id2label)
ANSWERS = ["yes", "no", "2", "red", "cat", "blue"]
#: fixture rows: (question_id, question, answer, image size (w, h), image mode)
QUESTIONS = [
    (1001, "What color is the cat?", "red", (96, 96), "RGB"),
    (1002, "How many cats are there?", "2", (96, 96), "RGB"),
    (1003, "Is the cat on the table?", "yes", (80, 48), "RGB"),     # not square: resized to a square
    (1004, "What animal is this?", "cat", (64, 64), "L"),           # grayscale: read as three channels
    (1005, "What color is the sky?", "purple", (96, 96), "RGB"),   # not in the vocabulary: dropped
    (1006, "Is the sky blue?", "no", (40, 60), "RGBA"),            # RGBA: converted to RGB
]
BERT_WORDS = ["what", "color", "is", "the", "cat", "how", "many", "are", "there", "on", "table", "animal", "this",
              "sky", "blue", "red", "yes", "no", "a", "dog", "##s", "?", "."]
CLIP_WORDS = ["a", "photo", "of", ".", "the", "an", *CIFAR10]


def image(seed: int, size: tuple[int, int], mode: str = "RGB") -> Any:
    """A PIL image of smooth random colours (``size`` is PIL's (width, height))."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.uniform(0, 255, (4, 4, 4))
    ys, xs = np.linspace(0, 3, h), np.linspace(0, 3, w)
    a = base[np.round(ys).astype(int)][:, np.round(xs).astype(int)] * 0.7 + rng.uniform(0, 76, (h, w, 4))
    im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGBA")
    return im if mode == "RGBA" else im.convert(mode)


def png(im: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


# -- models ------------------------------------------------------------------------------------
def bert_tokenizer(folder: Path, words: list[str] = BERT_WORDS) -> Any:
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=40)


def tiny_vilt(folder: Path, seed: int = 0, image_size: int = 96, answers: list[str] = ANSWERS,
              vocab_size: int | None = None, num_channels: int = 3, words: list[str] = BERT_WORDS) -> Path:
    """A ViLT VQA checkpoint in the Hub layout (module docstring); ``vocab_size`` smaller than the
    tokenizer's makes a processor that does not match the model."""
    import transformers
    from transformers import ViltConfig, ViltForQuestionAnswering

    from xbench.core.seeding import isolated_global_rng

    transformers.logging.disable_progress_bar()
    tok = bert_tokenizer(folder, words)
    config = ViltConfig(vocab_size=vocab_size or len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, image_size=image_size, patch_size=32, num_channels=num_channels,
                        max_position_embeddings=40, num_labels=len(answers), initializer_range=0.2,
                        id2label=dict(enumerate(answers)), label2id={a: i for i, a in enumerate(answers)})
    with isolated_global_rng(seed):
        model = ViltForQuestionAnswering(config)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_resize": True, "feature_extractor_type": "ViltFeatureExtractor",
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3, "size": image_size,
        "size_divisor": 32}, indent=2))
    return folder


def clip_bpe(folder: Path, words: list[str] = CLIP_WORDS) -> Any:
    """vocab.json and merges.txt of a byte-level BPE that spells each of ``words`` as one token (CLIP's
    layout: the 256 byte symbols, the same with ``</w>``, the merges' symbols, then the two specials),
    and the ``CLIPTokenizer`` built from the two files."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(s, len(vocab))
    merges: list[str] = []
    for w in words:
        parts = list(w[:-1]) + [w[-1] + "</w>"]
        while len(parts) > 1:
            merges.append(f"{parts[0]} {parts[1]}")
            parts = [parts[0] + parts[1]] + parts[2:]
            vocab.setdefault(parts[0], len(vocab))
    merges = list(dict.fromkeys(merges))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"), model_max_length=77)


def tiny_clip(folder: Path, seed: int = 0, image_size: int = 96, crop_size: int | None = None,
              legacy_eos: bool = True) -> Path:
    """A CLIP checkpoint in the Hub layout (module docstring); a ``crop_size`` other than
    ``image_size`` makes an image processor that does not match the model. ``legacy_eos=False``: the
    text config names the real end token (newer CLIP configs), which transformers pools at instead."""
    import transformers
    from transformers import CLIPConfig, CLIPModel

    from xbench.core.seeding import isolated_global_rng

    transformers.logging.disable_progress_bar()
    tok = clip_bpe(folder)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, pad_token_id=1,
                         eos_token_id=2 if legacy_eos else tok.eos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=image_size, patch_size=32),
        projection_dim=16)
    with isolated_global_rng(seed):
        model = CLIPModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    crop = crop_size or image_size
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": crop, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": crop}, indent=2))
    return folder


# -- datasets -----------------------------------------------------------------------------------
def vqa_rows(questions: list[tuple] = QUESTIONS) -> list[dict[str, Any]]:
    rows = []
    for k, (qid, q, a, size, mode) in enumerate(questions):
        rows.append({"question_type": " ".join(q.lower().split()[:2]), "multiple_choice_answer": a,
                     "answers": [{"answer": a if j < 8 else "blue", "answer_confidence": "yes", "answer_id": j + 1}
                                 for j in range(10)],
                     "image_id": 500 + k, "answer_type": "yes/no" if a in ("yes", "no") else "other",
                     "question_id": qid, "question": q,
                     "image": {"bytes": png(image(k, size, mode)), "path": f"COCO_val2014_{500 + k:012d}.png"}})
    return rows


def vqa_dataset(root: Path, rows: list[dict[str, Any]] | None = None, image_paths: bool = False) -> Path:
    """The dataset repo as lmms-lab/VQAv2 lays it out (one shard of the validation split); with
    ``image_paths`` the image column holds file names instead (a VQAv2 export beside its images)."""
    import datasets as d

    d.disable_progress_bars()
    rows = vqa_rows() if rows is None else rows
    answer = {"answer": d.Value("string"), "answer_confidence": d.Value("string"), "answer_id": d.Value("int64")}
    features = d.Features({"question_type": d.Value("string"), "multiple_choice_answer": d.Value("string"),
                           "answers": d.List(answer), "image_id": d.Value("int64"),
                           "answer_type": d.Value("string"), "question_id": d.Value("int64"),
                           "question": d.Value("string"), "image": d.Value("string") if image_paths else d.Image()})
    (root / "data").mkdir(parents=True, exist_ok=True)
    d.Dataset.from_list(rows, features=features).to_parquet(root / "data" / "validation-00000-of-00001.parquet")
    return root


CIFAR_README = """---
dataset_info:
  config_name: plain_text
  features:
  - name: img
    dtype: image
  - name: label
    dtype:
      class_label:
        names:
{names}
configs:
- config_name: plain_text
  data_files:
  - split: train
    path: plain_text/train-*
  - split: test
    path: plain_text/test-*
  default: true
---
"""


def cifar_dataset(root: Path, n_test: int = 6, n_train: int = 2) -> Path:
    """uoft-cs/cifar10's layout: the README's configs and one Parquet file per split under plain_text/."""
    import datasets as d

    d.disable_progress_bars()
    features = d.Features({"img": d.Image(), "label": d.ClassLabel(names=CIFAR10)})
    (root / "plain_text").mkdir(parents=True, exist_ok=True)
    for split, n, off in (("train", n_train, 100), ("test", n_test, 0)):
        rows = [{"img": {"bytes": png(image(off + i, (32, 32))), "path": None}, "label": (3 * i + 1) % 10}
                for i in range(n)]
        d.Dataset.from_list(rows, features=features).to_parquet(root / "plain_text" / f"{split}-00000-of-00001.parquet")
    names = "\n".join(f"          '{i}': {c}" for i, c in enumerate(CIFAR10))
    (root / "README.md").write_text(CIFAR_README.format(names=names))
    return root
