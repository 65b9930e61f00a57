"""Vision-language datasets through ``datasets.load_dataset``, for ``modality: multimodal`` tasks.

Where the data is and how it loads is :class:`xbench.data.hub.HFDataset`'s (``path``: a Hub dataset
id, a local folder or file, or a packaged builder with ``data_files``; ``name``, ``revision``,
``split``; a Hub id offline is "needs network" unless cached), with one difference: ``data_files``
given with a Hub id or a local folder are patterns inside that repository or folder, as
``load_dataset`` reads them (e.g. one Parquet shard of a large split), and are passed on as they are.

Images: a column of the ``datasets`` Image feature (read undecoded: a row's embedded bytes are
opened lazily, so only the examples a run encodes are decoded) or of file paths (strings). A path,
or an Image cell that holds only a path, is resolved against ``image_root`` if given, else against
the dataset's local folder; a missing file is reported, in one line naming the example, when the
example is encoded. Images in modes other than L and RGB (palette, RGBA, CMYK) are converted to RGB.

- ``hub-vqa``: visual question answering in the schema of ``lmms-lab/VQAv2`` (``question``,
  ``multiple_choice_answer``, ``answers`` (a list of {answer, answer_confidence, answer_id}),
  ``image``, ``question_id``, ``image_id``, ``question_type``, ``answer_type``; splits validation,
  testdev, test: only validation has answers). ``words``: the question split on whitespace, its
  trailing ``?`` (or ``.``, ``!``) a word of its own (:func:`split_words`); ``label``: the row's answer as an index into the split's
  answers (``label_names``: every distinct answer of the loaded rows, sorted). A VQA model source
  maps these names to its own answer vocabulary (:mod:`xbench.models.vl_hub`). ``meta``: the
  answer, the ten annotators' answers (``answers``; null for none) and the ``keep`` columns. No gold.
- ``hub-image-classes``: image classification (``uoft-cs/cifar10``: ``img``, ``label`` a ClassLabel
  airplane .. truck) turned into zero-shot image-text matching: every example's text is every
  class's caption (``template`` with the class name, e.g. "a photo of a {}.", split as questions are),
  one after another in class order, so the features are the image's patches and every caption's words.
  ``splits.info['caption_words']`` lists each caption's words, for the model source to split the text
  back into captions. ``class_names`` (optional) are the names written into the captions, in class
  order (default: the dataset's class names, ``_`` read as a space).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar, Iterator

from xbench.core.errors import XBenchError
from xbench.data.base import MultimodalRecord, Splits
from xbench.data.fields import Where, _param_error, is_missing, plain
from xbench.data.files import check_limit
from xbench.data.hub import BUILDERS, HFDataset, classlabel_names

#: trailing punctuation that becomes a word of its own (a question's "?", a caption's ".")
TRAILING = "?.!"


def split_words(text: str) -> list[str]:
    """``text`` split on whitespace, with trailing ``?``, ``.`` or ``!`` of the last word a word of its
    own (``"is it red?"`` -> ``["is", "it", "red", "?"]``)."""
    words = text.split()
    if words and len(words[-1]) > 1 and words[-1][-1] in TRAILING:
        words[-1:] = [words[-1][:-1], words[-1][-1]]
    return words


def open_image(data: bytes, where: Where, column: str) -> Any:
    """An embedded image's bytes as a PIL image, opened but not decoded (PIL reads the pixels when the
    modality converts the example); modes other than L and RGB converted to RGB."""
    import io

    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
    except OSError as e:
        raise where(column, f"the image cannot be read ({e})") from None
    return im if im.mode in ("L", "RGB") else im.convert("RGB")


class HubImages(HFDataset):
    """What the two sources share: loading, the image column, the row loop's errors."""

    offline = False
    param_types: ClassVar[dict[str, tuple[type, ...]]] = {
        "id": (str, type(None)), "image_root": (str, type(None)), "answers": (str, type(None)),
        "class_names": (list, type(None)), "data_files": (str, list, dict, type(None))}

    def _data_files(self) -> Any:
        df = self.p["data_files"]
        if df is not None and self.p["path"] not in BUILDERS:
            if not isinstance(df, (str, list, dict)):
                raise _param_error(self._task, "data_files", f"must be a pattern, a list or a split -> pattern "
                                                             f"mapping; got {df!r}")
            return df  # patterns inside the Hub repository or local folder, as load_dataset reads them
        return super()._data_files()

    def _origin(self) -> str:
        return f"{self._task}: dataset {self.p['path']!r} split {self.p['split']!r}"

    def _dataset(self, columns: dict[str, str | None]) -> Any:
        """The split, its named columns checked, the image column read undecoded."""
        import datasets

        if not isinstance(self.p["path"], str) or not self.p["path"]:
            raise _param_error(self._task, "path", "is required (a Hub dataset id, a local folder or file, or a "
                                                   "builder such as parquet with data_files)")
        for k, c in columns.items():
            if c is not None and (not isinstance(c, str) or not c):
                raise _param_error(self._task, k, f"must name a column of the dataset; got {c!r}")
        ds = self._load_split(self.p["split"])
        names = list(ds.column_names)
        for k, c in [*columns.items(), *(("keep", c) for c in self.p.get("keep", []))]:
            if c is not None and c not in names:
                raise XBenchError(f"{self._task}: field 'dataset.params.{k}': dataset {self.p['path']!r} split "
                                  f"{self.p['split']!r} has no column {c!r}; columns: {', '.join(names)}")
        img = columns["image"]
        if isinstance(ds.features.get(img), datasets.Image):
            ds = ds.cast_column(img, datasets.Image(decode=False))
        return ds

    def _root(self) -> Path | None:
        if self.p["image_root"] is not None:
            return self.data_path(self.p["image_root"])
        local = self._local()
        return (local if local.is_dir() else local.parent) if local is not None else None

    def _image(self, value: Any, where: Where, column: str, root: Path | None) -> Any:
        """A row's image as a PIL image (embedded bytes) or a resolved file path."""
        path = None
        if isinstance(value, dict) and ("bytes" in value or "path" in value):
            if value.get("bytes"):
                return open_image(value["bytes"], where, column)
            path = value.get("path")
        elif isinstance(value, str):
            path = value
        if not isinstance(path, str) or not path.strip():
            got = "an empty cell" if is_missing(value) or isinstance(value, dict) else type(value).__name__
            raise where(column, f"must be an image (the datasets Image feature) or an image file's path; got {got}")
        p = Path(path).expanduser()
        return p if p.is_absolute() or root is None else root / p

    def _rows(self, ds: Any, limit: int | None, id_column: str | None) -> Iterator[tuple[str, dict, Where]]:
        """(id, row, where) of the first ``limit`` rows: the id is the ``id_column``'s value (unique,
        non-empty) or ``{split}-{row}``, and ``where`` names it."""
        origin, seen = self._origin(), set()
        for i, row in enumerate(ds):
            if limit is not None and len(seen) >= limit:
                break
            row, where = plain(row), Where(origin, f"row {i}")
            rid = f"{self.p['split']}-{i}"
            if id_column:
                if is_missing(row[id_column]):
                    raise where(id_column, "the example id is empty")
                rid = str(row[id_column])
            where.example = rid
            if rid in seen:
                raise where(None, "the example id repeats an earlier row's")
            seen.add(rid)
            yield rid, row, where


class HubVQA(HubImages):
    """Visual questions and their answers in the schema of ``lmms-lab/VQAv2`` (module docstring)."""

    name = "hub-vqa"
    params = {"path": "lmms-lab/VQAv2", "name": None, "revision": None, "split": "validation", "data_files": None,
              "n_test": None, "question": "question", "answer": "multiple_choice_answer", "answers": "answers",
              "image": "image", "id": "question_id", "image_root": None, "keep": []}

    def load(self, seed: int) -> Splits:
        task, p = self._task, self.p
        limit = check_limit(p["n_test"], "n_test", task)
        if not isinstance(p["keep"], (list, tuple)) or not all(isinstance(c, str) and c for c in p["keep"]):
            raise _param_error(task, "keep", f"must be a list of column names; got {p['keep']!r}")
        cols = {k: p[k] for k in ("question", "answer", "answers", "image", "id")}
        ds = self._dataset(cols)
        root = self._root()
        rows: list[tuple[MultimodalRecord, str]] = []
        for rid, row, where in self._rows(ds, limit, cols["id"]):
            q = row[cols["question"]]
            if not isinstance(q, str) or not q.strip():
                raise where(cols["question"], f"the question must be a non-empty string; got {q!r}")
            a = row[cols["answer"]]
            if not isinstance(a, str) or not a.strip():
                raise where(cols["answer"], f"the answer must be a non-empty string; got {a!r} (a split without "
                                            f"answers, such as test?)")
            meta: dict[str, Any] = {"answer": a.strip()}
            if cols["answers"]:
                meta["answers"] = self._answers(row[cols["answers"]], where, cols["answers"])
            for c in p["keep"]:
                meta[c] = row[c]
            image = self._image(row[cols["image"]], where, cols["image"], root)
            rows.append((MultimodalRecord(rid, image, split_words(q), -1, meta=meta), a.strip()))
        if not rows:
            raise XBenchError(f"{self._origin()}: no examples")
        names = sorted({a for _, a in rows})
        index = {a: j for j, a in enumerate(names)}
        for r, a in rows:
            r.label = index[a]
        test = [r for r, _ in rows]
        info = {"path": p["path"], "name": p["name"], "revision": p["revision"], "split": p["split"],
                "columns": {k: v for k, v in cols.items() if v}, "n_answers": len(names)}
        return Splits([], test, names, info)

    @staticmethod
    def _answers(value: Any, where: Where, column: str) -> list[str]:
        """The annotators' answers: VQAv2's list of {answer, ...} (or a dict of lists, or plain strings)."""
        if isinstance(value, dict) and isinstance(value.get("answer"), list):
            value = value["answer"]
        if not isinstance(value, list):
            raise where(column, f"must be a list of answers; got {type(value).__name__}")
        out = []
        for v in value:
            v = v.get("answer") if isinstance(v, dict) else v
            if not isinstance(v, str):
                raise where(column, f"each answer must be a string (or a mapping with one under 'answer'); got {v!r}")
            out.append(v)
        return out


class HubImageClasses(HubImages):
    """Labelled images as zero-shot image-text matching against every class's caption (module docstring)."""

    name = "hub-image-classes"
    params = {"path": "uoft-cs/cifar10", "name": None, "revision": None, "split": "test", "data_files": None,
              "n_test": None, "image": "img", "label": "label", "id": None, "template": "a photo of a {}.",
              "class_names": None, "image_root": None}

    def load(self, seed: int) -> Splits:
        task, p = self._task, self.p
        limit = check_limit(p["n_test"], "n_test", task)
        template = p["template"]
        if not isinstance(template, str) or template.count("{}") != 1 or not template.replace("{}", "").strip():
            raise _param_error(task, "template", f"must be a caption with one {{}} for the class name, e.g. "
                                                 f"'a photo of a {{}}.'; got {template!r}")
        cols = {k: p[k] for k in ("image", "label", "id")}
        ds = self._dataset(cols)
        labels = classlabel_names(ds.features.get(cols["label"]))
        given = p["class_names"]
        if labels is None:
            if given is None:
                raise _param_error(task, "class_names", f"is required: column {cols['label']!r} of dataset "
                                                        f"{p['path']!r} is not a ClassLabel with class names")
            labels = [str(c) for c in given]
        shown = [str(c) for c in given] if given is not None else [c.replace("_", " ") for c in labels]
        if len(shown) != len(labels) or not all(isinstance(c, str) and c.strip() for c in (given or labels)):
            raise _param_error(task, "class_names", f"must be {len(labels)} non-empty names, one per class "
                                                    f"({', '.join(labels)}); got {given!r}")
        captions = [split_words(template.format(c)) for c in shown]
        words = [w for c in captions for w in c]
        root = self._root()
        test: list[MultimodalRecord] = []
        counts: Counter = Counter()
        for rid, row, where in self._rows(ds, limit, cols["id"]):
            lab = row[cols["label"]]
            if isinstance(lab, bool) or not isinstance(lab, int) or not 0 <= lab < len(labels):
                raise where(cols["label"], f"label {lab!r} is not a class index 0..{len(labels) - 1}")
            counts[labels[lab]] += 1
            image = self._image(row[cols["image"]], where, cols["image"], root)
            test.append(MultimodalRecord(rid, image, list(words), int(lab), meta={"class": labels[lab]}))
        if not test:
            raise XBenchError(f"{self._origin()}: no examples")
        info = {"path": p["path"], "name": p["name"], "revision": p["revision"], "split": p["split"],
                "template": template, "captions": [" ".join(c) for c in captions], "caption_words": captions,
                "class_counts": dict(counts)}
        return Splits([], test, list(labels), info)
