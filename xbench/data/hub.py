"""``hf-dataset``: datasets loaded with ``datasets.load_dataset``, mapped to records.

``path`` is a Hub dataset id, a local folder or file, or a packaged builder (``csv``,
``json``, ``parquet``) with ``data_files``. Rows become records through the same field
mapping as the ``path`` source (:mod:`xbench.data.fields`), or through a built-in *recipe*
where the Hub schema needs logic; a recipe is chosen with ``recipe:`` or detected from the
columns when ``text`` is not given:

- ``hatexplain`` (``Hate-speech-CNERG/hatexplain``: ``id``, ``annotators`` {``label``,
  ``annotator_id``, ``target``}, ``rationales``, ``post_tokens``): the majority label of the
  annotators (a class chosen by more than half; posts without one are dropped and counted),
  and the ``union`` or ``majority`` (a word marked by more than half of the rationale lists;
  param ``rationale_aggregation``) of the annotators' 0/1 rationales over ``post_tokens``.
  Posts whose majority label is ``normal`` get no rationale (annotators give rationales to
  justify hate speech or offensive labels), and neither do posts with no rationale lists.
- ``movie_rationales`` (ERASER Movie Reviews on the Hub: ``review``, ``label`` NEG/POS,
  ``evidences`` strings): each evidence string is found in the review (its words in order,
  any whitespace between them, at word boundaries; every occurrence) and becomes character
  offsets, i.e. the ``chars`` rationale form. Unmatched evidences are counted in the info.
- ``esnli`` (the e-SNLI CSV of Camburu et al. 2018: ``pairID``, ``gold_label``, ``Sentence1``,
  ``Sentence2``, ``Sentence{1,2}_marked_{k}``): a premise/hypothesis pair; the highlighted words
  are those between stars in ``Sentence*_marked_k``, as the dataset's README prescribes (its
  ``Sentence*_Highlighted_k`` index columns are to be ignored). Annotators k = 1..3 (dev/test
  have three) combine by ``rationale_aggregation``. Rows with gold label ``-`` are dropped.
- ``sst2`` (``stanfordnlp/sst2``: ``idx``, ``sentence``, ``label``): no rationale.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from xbench.core import netcheck
from xbench.core.cache import cache_dir
from xbench.core.errors import XBenchError
from xbench.data.base import DatasetSource, Record, Splits, resolve_data_path
from xbench.data.fields import (
    FIELD_PARAMS,
    FieldMap,
    Segment,
    Where,
    _param_error,
    chars_to_mask,
    is_missing,
    make_record,
    plain,
    resolve_label_names,
    word_spans,
)
from xbench.data.files import check_labels, check_limit

AGGREGATIONS = ("majority", "union")
#: ``datasets``' packaged builders that read data files, named here so that ``unavailable()`` need
#: not import ``datasets`` (several seconds) to tell a builder from a Hub id
BUILDERS = frozenset({"arrow", "csv", "json", "pandas", "parquet", "text", "xml", "webdataset", "imagefolder",
                      "audiofolder", "videofolder", "pdffolder", "hdf5", "lance", "iceberg"})
DATA_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet", ".arrow", ".txt", ".gz", ".zip")


# -- recipes --------------------------------------------------------------------------------
@dataclass
class RecipeOut:
    """What a recipe makes of a row: segments, a raw label, a rationale over all words, meta."""

    rid: str | None
    segs: list[Segment]
    label: Any
    rationale: list[int] | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recipe:
    name: str
    #: columns whose presence identifies the schema (compared case-insensitively)
    columns: frozenset[str]
    label_names: list[str]
    #: (row, where, context) -> RecipeOut, or a str saying why the row is dropped
    convert: Callable[[dict[str, Any], Where, "RecipeContext"], "RecipeOut | str"]
    label_column: str = "label"
    pair: bool = False


@dataclass
class RecipeContext:
    aggregation: str
    label_names: list[str]
    stats: Counter = field(default_factory=Counter)


def aggregate(masks: list[list[int]], how: str) -> list[int]:
    """Union (marked by any) or majority (marked by more than half) of equal-length 0/1 lists."""
    counts = [sum(col) for col in zip(*masks)]
    if how == "union":
        return [int(c > 0) for c in counts]
    return [int(2 * c > len(masks)) for c in counts]


def _col(row: dict[str, Any], name: str, where: Where) -> Any:
    if name in row:
        return row[name]
    lower = {str(k).lower(): k for k in row}
    if name.lower() in lower:
        return row[lower[name.lower()]]
    raise where(name, f"is missing (the row has fields: {', '.join(map(str, row))})")


def _hatexplain(row: dict[str, Any], where: Where, ctx: RecipeContext) -> RecipeOut | str:
    rid = str(_col(row, "id", where))
    where.example = rid
    tokens = _col(row, "post_tokens", where)
    if not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
        raise where("post_tokens", "must be a list of strings")
    ann = _col(row, "annotators", where)
    # the Hub features give a dict of lists (datasets' Sequence of a dict); the original JSON a
    # list of dicts
    if isinstance(ann, dict):
        labels = ann.get("label")
    elif isinstance(ann, list) and all(isinstance(a, dict) for a in ann):
        labels = [a.get("label") for a in ann]
    else:
        raise where("annotators", f"must be a mapping of lists or a list of mappings; got {type(ann).__name__}")
    if not isinstance(labels, list) or not labels:
        raise where("annotators.label", "must be a non-empty list of annotator labels")
    idx = []
    for lab in labels:
        if isinstance(lab, str) and lab in ctx.label_names:
            idx.append(ctx.label_names.index(lab))
        elif isinstance(lab, int) and not isinstance(lab, bool) and 0 <= lab < len(ctx.label_names):
            idx.append(lab)
        else:
            raise where("annotators.label", f"label {lab!r} is not one of {', '.join(ctx.label_names)} "
                                            f"or their indices")
    top, count = Counter(idx).most_common(1)[0]
    if 2 * count <= len(idx):
        ctx.stats["dropped_no_majority_label"] += 1
        return "no majority label"
    rats = _col(row, "rationales", where) or []
    masks = []
    for k, r in enumerate(rats):
        if not r:
            continue
        if len(r) != len(tokens) or any(x not in (0, 1) for x in r):
            raise where("rationales", f"annotator rationale {k} must be 0/1 over the {len(tokens)} "
                                      f"post_tokens; got {len(r)} entries")
        masks.append([int(x) for x in r])
    # rationales justify a hate speech / offensive label: a post judged normal gets none
    if ctx.label_names[top] == "normal":
        masks = []
    rationale = aggregate(masks, ctx.aggregation) if masks else None
    ctx.stats["with_rationale"] += rationale is not None
    return RecipeOut(rid, [Segment(list(tokens))], top, rationale,
                     {"annotator_labels": [ctx.label_names[i] for i in idx], "n_rationales": len(masks)})


def evidence_offsets(review: str, evidence: str) -> list[tuple[int, int]]:
    """Character spans of every occurrence of ``evidence``'s words in ``review``, in order, with
    any whitespace between them and whitespace (or the text's ends) on either side.

    Written by hand: the Hub's ``movie_rationales`` keeps the evidence text but drops ERASER's
    token offsets, and the text joins document tokens with single spaces where the review may
    have a line break, so neither ``str.find`` nor a library aligner applies directly.
    """
    words = evidence.split()
    if not words:
        return []
    pattern = r"(?<!\S)" + r"\s+".join(map(re.escape, words)) + r"(?!\S)"
    return [m.span() for m in re.finditer(pattern, review)]


def _movies(row: dict[str, Any], where: Where, ctx: RecipeContext) -> RecipeOut | str:
    review = _col(row, "review", where)
    if not isinstance(review, str):
        raise where("review", f"must be a string; got {type(review).__name__}")
    evid = _col(row, "evidences", where) or []
    if not isinstance(evid, list) or not all(isinstance(e, str) for e in evid):
        raise where("evidences", "must be a list of strings")
    spans = word_spans(review)
    offsets = []
    for e in evid:
        found = evidence_offsets(review, e)
        ctx.stats["evidences"] += 1
        ctx.stats["evidences_unmatched"] += not found
        ctx.stats["evidences_matched_more_than_once"] += len(found) > 1
        offsets += found
    seg = Segment([review[s:e] for s, e in spans], review, spans)
    rationale = chars_to_mask(spans, offsets) if evid else None
    return RecipeOut(None, [seg], _col(row, "label", where), rationale, {"n_evidences": len(evid)})


def parse_marked(marked: str) -> tuple[str, list[tuple[int, int]], bool]:
    """e-SNLI's ``Sentence*_marked_k``: the text without stars, the character spans that were
    between stars, and whether the stars were balanced (an unmatched last star is ignored)."""
    clean: list[str] = []
    spans: list[tuple[int, int]] = []
    start = None
    for ch in marked:
        if ch == "*":
            if start is None:
                start = len(clean)
            else:
                spans.append((start, len(clean)))
                start = None
        else:
            clean.append(ch)
    return "".join(clean), spans, start is None


def _esnli_segment(row: dict[str, Any], which: int, where: Where, ctx: RecipeContext
                   ) -> tuple[Segment, list[list[int]]]:
    sent = _col(row, f"Sentence{which}", where)
    if not isinstance(sent, str) or not sent.strip():
        raise where(f"Sentence{which}", "must be a non-empty string")
    seg = Segment(sent.split(), sent, word_spans(sent))
    masks = []
    for k in (1, 2, 3):
        try:
            marked = _col(row, f"Sentence{which}_marked_{k}", where)
        except XBenchError:
            if k == 1:
                raise
            break
        if is_missing(marked):
            continue
        clean, hl, balanced = parse_marked(str(marked))
        ctx.stats["unbalanced_stars"] += not balanced
        cspans = word_spans(clean)
        if [clean[s:e] for s, e in cspans] != seg.words:
            # the marked copy differs from the sentence beyond the stars: align by word position
            # only if the word counts agree, else drop this annotator's highlights for the row
            ctx.stats["marked_text_differs"] += 1
            if len(cspans) != len(seg.words):
                continue
        masks.append(chars_to_mask(cspans, hl))
    return seg, masks


def _esnli(row: dict[str, Any], where: Where, ctx: RecipeContext) -> RecipeOut | str:
    rid = _col(row, "pairID", where) if any(str(k).lower() == "pairid" for k in row) else None
    if rid is not None:
        where.example = str(rid)
    label = _col(row, "gold_label", where)
    if isinstance(label, str) and label.strip() in ("-", ""):
        ctx.stats["dropped_no_gold_label"] += 1
        return "no gold label"
    (a, ma), (b, mb) = _esnli_segment(row, 1, where, ctx), _esnli_segment(row, 2, where, ctx)
    # annotator k's highlights over both sentences; annotators are paired by k
    n = min(len(ma), len(mb))
    masks = [ma[k] + mb[k] for k in range(n)]
    rationale = aggregate(masks, ctx.aggregation) if masks else None
    return RecipeOut(None if rid is None else str(rid), [a, b], label, rationale, {"n_annotators": n})


def _sst2(row: dict[str, Any], where: Where, ctx: RecipeContext) -> RecipeOut | str:
    rid = str(_col(row, "idx", where))
    where.example = rid
    text = _col(row, "sentence", where)
    return RecipeOut(rid, [FieldMap.segment(text, "sentence", where)], _col(row, "label", where), None)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("hatexplain", frozenset({"id", "annotators", "rationales", "post_tokens"}),
           ["hatespeech", "normal", "offensive"], _hatexplain, label_column="annotators"),
    Recipe("movie_rationales", frozenset({"review", "label", "evidences"}), ["NEG", "POS"], _movies),
    Recipe("esnli", frozenset({"sentence1", "sentence2", "gold_label", "sentence1_marked_1",
                               "sentence2_marked_1"}),
           ["entailment", "neutral", "contradiction"], _esnli, label_column="gold_label", pair=True),
    Recipe("sst2", frozenset({"idx", "sentence", "label"}), ["negative", "positive"], _sst2),
)}


def detect_recipe(columns: list[str]) -> Recipe | None:
    cols = {c.lower() for c in columns}
    for r in RECIPES.values():
        if r.columns <= cols:
            return r
    return None


def class_name(raw: Any, names: list[str], where: Where, column: str) -> str:
    """A recipe's raw label as the dataset's class name (an index is looked up in ``names``)."""
    if isinstance(raw, str) and raw in names:
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        if 0 <= raw < len(names):
            return names[raw]
        raise where(column, f"label {raw} is out of range for the classes {', '.join(names)} "
                            f"(an unlabelled split?)")
    raise where(column, f"label {raw!r} is not one of {', '.join(names)}")


def classlabel_names(feature: Any) -> list[str] | None:
    """Names of a ``datasets.ClassLabel`` feature (also inside a list or a dict's ``label``)."""
    from datasets import ClassLabel

    for _ in range(3):
        if isinstance(feature, ClassLabel):
            return list(feature.names)
        if isinstance(feature, dict):
            feature = feature.get("label")
        else:
            feature = getattr(feature, "feature", None)
        if feature is None:
            return None
    return None


# -- the source -----------------------------------------------------------------------------
class HFDataset(DatasetSource):
    """A dataset through ``datasets.load_dataset`` (Hub id, local folder/file, or builder + files)."""

    name = "hf-dataset"
    offline = False
    params = {"path": None, "name": None, "revision": None, "split": "test", "train_split": None,
              "data_files": None, "recipe": None, "rationale_aggregation": "majority",
              "n_train": None, "n_test": None, **FIELD_PARAMS}
    #: field params a recipe fixes itself
    RECIPE_FIXED: ClassVar[tuple[str, ...]] = ("text", "id", "rationale", "rationale_format", "label")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._given = set(params)

    # -- where the data is ---------------------------------------------------------------------
    @property
    def _task(self) -> str:
        return self.task_path or "<task>"

    def _local(self) -> Path | None:
        """The resolved local folder/file ``path`` names, or None for a Hub id / builder."""
        path = self.p["path"]
        if not isinstance(path, str) or not path:
            return None
        if path in BUILDERS:
            return None
        # a Hub id is "name" or "org/name"; anything else is a path (as datasets decides too)
        looks_local = (path.startswith((".", "/", "~", "$")) or path.count("/") > 1
                       or Path(path).suffix.lower() in DATA_SUFFIXES)
        try:
            return resolve_data_path(path, self.task_path)
        except XBenchError:
            if looks_local:
                raise
            return None

    def _data_files(self) -> Any:
        """``data_files`` with local entries resolved like other data paths (URLs kept)."""
        df = self.p["data_files"]
        if df is None:
            return None

        def one(v: Any) -> Any:
            if not isinstance(v, str):
                raise _param_error(self._task, "data_files", f"entries must be paths or URLs; got {v!r}")
            return v if netcheck.url_host(v) else str(resolve_data_path(v, self.task_path))

        if isinstance(df, str):
            return one(df)
        if isinstance(df, list):
            return [one(v) for v in df]
        if isinstance(df, dict):
            return {k: ([one(x) for x in v] if isinstance(v, list) else one(v)) for k, v in df.items()}
        raise _param_error(self._task, "data_files", f"must be a path, a list or a split -> path mapping; got {df!r}")

    def _urls(self) -> list[str]:
        df = self.p["data_files"]
        vals = df.values() if isinstance(df, dict) else ([df] if isinstance(df, str) else (df or []))
        flat = [x for v in vals for x in (v if isinstance(v, list) else [v])]
        return [v for v in flat if isinstance(v, str) and netcheck.url_host(v)]

    def _is_hub_id(self) -> bool:
        return self.p["path"] not in BUILDERS and self._local() is None

    def unavailable(self) -> str | None:
        path = self.p["path"]
        if not isinstance(path, str) or not path:
            return None  # load() reports the missing parameter
        for url in self._urls():
            host = netcheck.url_host(url)
            if netcheck.hub_offline_flag() or not netcheck.reachable(host):
                return f"needs network: dataset files at {url} ({host} unreachable)"
        if self._is_hub_id():
            if netcheck.hub_dataset_cached(path) or netcheck.hub_reachable():
                return None
            return f"needs network: dataset {path} (not in the local Hugging Face cache)"
        return None

    # -- loading -------------------------------------------------------------------------------
    def _load_split(self, split: str) -> Any:
        import datasets

        datasets.disable_progress_bars()
        path = self.p["path"]
        local = self._local()
        kw: dict[str, Any] = {"split": split}
        if self.p["revision"]:
            kw["revision"] = self.p["revision"]
        df = self._data_files()
        if df is not None:
            kw["data_files"] = df
        hub_id = path not in BUILDERS and local is None  # as _is_hub_id(), without resolving the path again
        if not hub_id:
            # local data is prepared into xbench's cache, not the user's Hugging Face cache
            kw["cache_dir"] = str(cache_dir("hf-datasets"))
        offline = hub_id and not netcheck.hub_reachable()
        target = str(local) if local is not None else path
        try:
            if offline:
                with netcheck.forced_offline():
                    return datasets.load_dataset(target, self.p["name"], **kw)
            return datasets.load_dataset(target, self.p["name"], **kw)
        except Exception as e:  # datasets raises many types (missing split, script repo, bad files)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise XBenchError(f"{self._task}: dataset {path!r} split {split!r}: cannot load "
                              f"({type(e).__name__}: {msg})") from None

    def load(self, seed: int) -> Splits:
        task = self._task
        if not isinstance(self.p["path"], str) or not self.p["path"]:
            raise _param_error(task, "path", "is required (a Hub dataset id, a local folder or file, or a "
                                             "builder such as csv with data_files)")
        agg = self.p["rationale_aggregation"]
        if agg not in AGGREGATIONS:
            raise _param_error(task, "rationale_aggregation", f"must be one of {', '.join(AGGREGATIONS)}; got {agg!r}")
        limits = {s: check_limit(self.p[f"n_{s}"], f"n_{s}", task) for s in ("train", "test")}
        test = self._load_split(self.p["split"])
        recipe = self._recipe(list(test.column_names))
        out: dict[str, list[Record]] = {}
        info: dict[str, Any] = {"path": self.p["path"], "name": self.p["name"], "revision": self.p["revision"],
                                "recipe": recipe.name if recipe else None}
        hint = None
        if recipe is not None:  # the dataset's own class names, which recipes' raw labels use
            hint = classlabel_names(test.features.get(recipe.label_column)) or recipe.label_names
        elif self.p["label"] in test.features:
            hint = classlabel_names(test.features[self.p["label"]])
        fmap = self._fieldmap(recipe)
        ctx = RecipeContext(agg, list(hint or []))
        for split, key in (("test", "split"), ("train", "train_split")):
            if split == "train" and not self.p["train_split"]:
                out["train"] = []
                continue
            ds = test if split == "test" else self._load_split(self.p[key])
            out[split] = self._records(ds, self.p[key], recipe, fmap, ctx, limits[split], hint)
        if not out["test"]:
            raise XBenchError(f"{task}: dataset {self.p['path']!r} split {self.p['split']!r}: no examples")
        label_names = resolve_label_names(fmap, out["train"] + out["test"], hint)
        origin = f"{self.p['path']}[{self.p['split']}]"
        for split in ("train", "test"):
            check_labels(out[split], label_names, origin)
        if ctx.stats:
            info["recipe_stats"] = dict(ctx.stats)
        if recipe is not None and recipe.name in ("hatexplain", "esnli"):
            info["rationale_aggregation"] = agg
        return Splits(out["train"], out["test"], label_names, info)

    def _recipe(self, columns: list[str]) -> Recipe | None:
        task, given = self._task, self._given
        name = self.p["recipe"]
        if name is not None:
            if name not in RECIPES:
                raise _param_error(task, "recipe", f"must be one of {', '.join(RECIPES)}; got {name!r}")
            recipe = RECIPES[name]
            missing = sorted(recipe.columns - {c.lower() for c in columns})
            if missing:
                raise XBenchError(f"{task}: dataset {self.p['path']!r} has no column(s) {', '.join(missing)} "
                                  f"for recipe {name!r}; columns: {', '.join(columns)}")
        elif "text" in given:
            return None
        else:
            recipe = detect_recipe(columns)
            if recipe is None:
                raise _param_error(task, "text", f"is required: no built-in recipe matches the columns "
                                                 f"({', '.join(columns)}); name the text and label fields")
        fixed = sorted(k for k in self.RECIPE_FIXED if k in given)
        if fixed:
            raise _param_error(task, fixed[0], f"is set by the {recipe.name!r} recipe; remove it (only "
                                               f"label_map, with label_names, may be given with a recipe)")
        if "label_names" in given and "label_map" not in given:
            raise _param_error(task, "label_names", f"needs label_map with the {recipe.name!r} recipe (raw "
                                                    f"labels are its class names: {', '.join(recipe.label_names)})")
        return recipe

    def _fieldmap(self, recipe: Recipe | None) -> FieldMap:
        p = dict(self.p)
        if recipe is not None:  # the recipe's segments/rationale are fed in directly; text is a placeholder
            p["text"] = ["a", "b"] if recipe.pair else "a"
            p["label"] = recipe.label_column
        return FieldMap.from_params(p, self._task)

    def _records(self, ds: Any, split: str, recipe: Recipe | None, fmap: FieldMap, ctx: RecipeContext,
                 limit: int | None, hint: list[str] | None) -> list[Record]:
        origin = f"{self.p['path']}[{split}]"
        out: list[Record] = []
        seen: set[str] = set()
        for i, row in enumerate(ds):
            if limit is not None and len(out) >= limit:
                break
            row = plain(row)
            where = Where(origin, f"row {i}")
            if recipe is None:
                rec = fmap.record(row, where, f"{split}-{i}")
            else:
                got = recipe.convert(row, where, ctx)
                if isinstance(got, str):
                    continue
                rid = got.rid if got.rid is not None else f"{split}-{i}"
                where.example = rid
                label = fmap.label_index(class_name(got.label, hint or [], where, recipe.label_column),
                                         where, hint)
                rec = make_record(rid, got.segs, label, got.rationale, got.meta)
            if rec.id in seen:
                raise Where(origin, f"row {i}", rec.id)(None, "the example id repeats an earlier row's")
            seen.add(rec.id)
            out.append(rec)
        return out
