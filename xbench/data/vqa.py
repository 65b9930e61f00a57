"""``vqa-shapes``: generated scenes and templated questions, a visual-question-answering task whose
gold is known per modality (the object pixels and the question words that decide the answer).

The generation rule:

- a scene is a ``(3, size, size)`` RGB canvas (default 24) cut into a 3 x 3 grid of cells; every
  object sits in its own cell (a random permutation of the cells), so objects never touch;
- an object has a shape (square, disk, triangle: :func:`xbench.data.images.shape_masks`' geometry,
  radius drawn uniformly from 2..3) and a colour (red, green, blue: that channel at an intensity
  drawn uniformly from [0.7, 1]); the other pixels are noise, uniform in [0, ``noise``] per channel;
- a question is one of four templates, with the answers among ``ANSWERS``:

  ========  ================================  ==================  ============================
  type      words                             answer              gold
  ========  ================================  ==================  ============================
  exist     is there a <colour> <shape> ?     yes / no (1/2 each)  the object(s) if yes; colour
                                                                   and shape words
  colour    what colour is the <shape> ?      the one <shape>'s   that object; the shape word
                                              colour (uniform)
  count     how many <shape>s are there ?     0..3 (uniform)       those objects; the shape word
  prior     what colour is the <colour>       <colour>, whatever  no pixels; the colour word
            <shape> ?                         the scene holds
  ========  ================================  ==================  ============================

  For ``exist`` the scene also holds near misses (an object of the asked colour and another
  shape, one of the asked shape and another colour, each with probability 1/2), so the question is
  only answered by binding the two; for ``colour`` and ``count`` the other objects have other
  shapes. 2..4 objects per scene (count: the k asked-for objects and 1..2 others, 0..1 when k = 3).

- **The controlled language-prior split.** In the ``prior`` questions the answer is in the
  question and the scene is drawn independently of it: the image carries no information about the
  answer, and a model trained on them reads the colour word (text reliance 1). In the visual
  questions (exist, colour, count) the answer given the question words alone is uniform (chance:
  1/2, 1/3, 1/4), so an accurate model must read the image, and the question to know what to look for.

``questions`` (train) and ``test_questions`` (the test split: ``visual`` = exist, colour, count;
``prior``; or a list) choose the templates. Training mixes all four with ``train_mix`` weights, so
one model serves the visual and the prior test split alike. Every draw comes from
``np_rng('vqa-shapes', seed, split)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.data.base import DatasetSource, MultimodalRecord, Splits
from xbench.data.images import shape_masks

SHAPES = ("square", "disk", "triangle")
COLOURS = ("red", "green", "blue")
QUESTION_TYPES = ("exist", "colour", "count", "prior")
VISUAL = ("exist", "colour", "count")
ANSWERS = ("yes", "no", "red", "green", "blue", "0", "1", "2", "3")
#: every word a question can hold (the trained tokenizer's vocabulary)
VOCABULARY = ("is", "there", "a", "what", "colour", "the", "how", "many", "are", "?") + COLOURS + SHAPES + \
    tuple(s + "s" for s in SHAPES)


def question_set(value: Any, field: str) -> tuple[str, ...]:
    if value == "visual":
        return VISUAL
    if value == "all":
        return QUESTION_TYPES
    if value == "prior":
        return ("prior",)
    if isinstance(value, list) and value and all(v in QUESTION_TYPES for v in value):
        return tuple(dict.fromkeys(value))
    raise XBenchError(f"dataset 'vqa-shapes': parameter '{field}' must be visual, prior, all or a list of "
                      f"{', '.join(QUESTION_TYPES)}; got {value!r}")


class VQAShapes(DatasetSource):
    """Generated scenes of coloured shapes with templated questions (module docstring)."""

    name = "vqa-shapes"
    params = {"n_train": 24000, "n_test": 1000, "size": 24, "noise": 0.1, "test_questions": "visual",
              "train_mix": {"exist": 0.3, "colour": 0.25, "count": 0.25, "prior": 0.2}}

    def _check(self) -> None:
        p = self.p
        if p["size"] < 21:
            raise XBenchError("dataset 'vqa-shapes': parameter 'size' must be at least 21 (3 x 3 cells of 7 pixels)")
        if not 0 <= p["noise"] < 0.7:
            raise XBenchError("dataset 'vqa-shapes': parameter 'noise' must be in [0, 0.7)")
        mix = p["train_mix"]
        if not isinstance(mix, dict) or not mix or any(k not in QUESTION_TYPES for k in mix) or \
                any(not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 for v in mix.values()) or \
                sum(mix.values()) <= 0:
            raise XBenchError(f"dataset 'vqa-shapes': parameter 'train_mix' must map question types "
                              f"({', '.join(QUESTION_TYPES)}) to non-negative weights; got {mix!r}")

    def load(self, seed: int) -> Splits:
        self._check()
        mix = self.p["train_mix"]
        types = tuple(t for t in QUESTION_TYPES if mix.get(t, 0) > 0)
        weights = np.array([mix[t] for t in types], dtype=np.float64)
        test_types = question_set(self.p["test_questions"], "test_questions")
        train = self.generate(int(self.p["n_train"]), np_rng("vqa-shapes", seed, "train"), "train",
                              types, weights / weights.sum())
        test = self.generate(int(self.p["n_test"]), np_rng("vqa-shapes", seed, "test"), "test",
                             test_types, np.full(len(test_types), 1.0 / len(test_types)))
        size = int(self.p["size"])
        return Splits(train, test, list(ANSWERS), {"shape": [3, size, size], "vocabulary": list(VOCABULARY),
                                                   "test_questions": list(test_types)})

    def generate(self, n: int, rng: np.random.Generator, split: str, types: tuple[str, ...],
                 weights: np.ndarray) -> list[MultimodalRecord]:
        size = int(self.p["size"])
        cell = size // 3
        qtype = rng.choice(len(types), size=n, p=weights)
        out = []
        for i in range(n):
            t = types[qtype[i]]
            objects, words, answer, gold_objs, gold_words = self.question(t, rng)
            k = len(objects)
            cells = rng.permutation(9)[:k]
            shape_idx = np.array([SHAPES.index(s) for s, _ in objects])
            r = rng.integers(2, 4, size=k)
            oy = r + np.floor(rng.random(k) * (cell - 1 - 2 * r)).astype(np.int64)
            ox = r + np.floor(rng.random(k) * (cell - 1 - 2 * r)).astype(np.int64)
            cy, cx = (cells // 3) * cell + oy, (cells % 3) * cell + ox
            masks = shape_masks(shape_idx, cy, cx, r, size)  # (k, size, size); type index = SHAPES order
            level = rng.uniform(0.7, 1.0, size=k)
            x = rng.uniform(0.0, self.p["noise"], size=(3, size, size))
            for j, (_, colour) in enumerate(objects):
                ch = COLOURS.index(colour)
                x[:, masks[j]] = 0.0
                x[ch, masks[j]] = level[j]
            gold = np.zeros((size, size), dtype=np.int8)
            for j in gold_objs:
                gold |= masks[j].astype(np.int8)
            rationale = [int(j in gold_words) for j in range(len(words))]
            out.append(MultimodalRecord(f"{split}-{i}", x.astype(np.float32), words, ANSWERS.index(answer), gold,
                                        rationale, {"question_type": t, "objects": [f"{c} {s}" for s, c in objects]}))
        return out

    @staticmethod
    def question(t: str, rng: np.random.Generator) -> tuple[list[tuple[str, str]], list[str], str, list[int], list[int]]:
        """(objects as (shape, colour), question words, answer, indices of the gold objects, indices of
        the gold words) for a question of type ``t``."""
        def pick(seq: tuple[str, ...], avoid: str | None = None) -> str:
            pool = [s for s in seq if s != avoid]
            return pool[int(rng.integers(len(pool)))]

        s, c = pick(SHAPES), pick(COLOURS)
        if t == "exist":
            yes = bool(rng.random() < 0.5)
            objs = [(s, c)] if yes else []
            if rng.random() < 0.5:
                objs.append((pick(SHAPES, s), c))  # the colour, another shape
            if rng.random() < 0.5:
                objs.append((s, pick(COLOURS, c)))  # the shape, another colour
            while len(objs) < 2 or (len(objs) < 4 and rng.random() < 0.3):
                o = (pick(SHAPES), pick(COLOURS))
                if o != (s, c):
                    objs.append(o)
            order = rng.permutation(len(objs))
            objs = [objs[j] for j in order]
            gold = [j for j, o in enumerate(objs) if o == (s, c)]
            return objs, ["is", "there", "a", c, s, "?"], "yes" if yes else "no", gold, [3, 4]
        if t == "colour":
            objs = [(s, c)] + [(pick(SHAPES, s), pick(COLOURS)) for _ in range(int(rng.integers(1, 4)))]
            order = rng.permutation(len(objs))
            objs = [objs[j] for j in order]
            return objs, ["what", "colour", "is", "the", s, "?"], c, [int(np.flatnonzero(order == 0)[0])], [4]
        if t == "count":
            k = int(rng.integers(0, 4))
            others = int(rng.integers(1, 3)) if k < 3 else int(rng.integers(0, 2))  # 1..4 objects in all
            objs = [(s, pick(COLOURS)) for _ in range(k)] + [(pick(SHAPES, s), pick(COLOURS)) for _ in range(others)]
            order = rng.permutation(len(objs))
            objs = [objs[j] for j in order]
            gold = [j for j, o in enumerate(objs) if o[0] == s]
            return objs, ["how", "many", s + "s", "are", "there", "?"], str(k), gold, [2]
        if t == "prior":
            objs = [(pick(SHAPES), pick(COLOURS)) for _ in range(int(rng.integers(2, 5)))]
            return objs, ["what", "colour", "is", "the", c, s, "?"], c, [], [4]
        raise XBenchError(f"dataset 'vqa-shapes': unknown question type {t!r}")
