"""Property tests (hypothesis): whatever a user puts in a task file, a suite file or a data file, the
loaders either accept it or raise :class:`XBenchError` with one line that names the file (the CLI
prints it and exits 2). Any other exception is a traceback the user would see: a bug.

The strategies start from the shipped files and break them the ways people do: a value of the
wrong type or shape in any field (nested too), a field deleted or misspelt, a whole file of
arbitrary text; data rows with missing, null, mistyped or out-of-range fields and lines that are
not JSON."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from xbench.core.errors import XBenchError  # noqa: E402
from xbench.data.files import PathSource  # noqa: E402
from xbench.run.config import load_suite  # noqa: E402
from xbench.tasks.catalogue import load_task_file  # noqa: E402
from xbench.tasks.task import load_splits, sources  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TASKS = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "tasks").glob("*.yaml"))}
SUITES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "suites").glob("*.yaml"))}
GENERATED = {"synthetic-sentiment", "synthetic-reviews", "synthetic-shapes", "synthetic-linear", "linear-generator",
             "templates-sentiment", "breast-cancer", "digits"}
SETTINGS = settings(max_examples=int(__import__("os").environ.get("XBENCH_FUZZ", 150)), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.integers(-3, 3) | st.floats(allow_nan=True)
           | st.floats(-2, 2) | st.text(max_size=12) | st.sampled_from(["", "0", "1.5", "auto", "mask", "none"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def paths(d, prefix=()):
    """Every key path of a nested mapping (and list index paths)."""
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else []
    for k, v in items:
        out.append(prefix + (k,))
        out += paths(v, prefix + (k,))
    return out


def get(doc, path):
    for k in path:
        doc = doc[k]
    return doc


@st.composite
def broken(draw, originals: dict):
    """A shipped file with one or two edits: set a field (any depth) to any value, delete it, or
    add a field that is not one."""
    doc = copy.deepcopy(originals[draw(st.sampled_from(sorted(originals)))])
    for _ in range(draw(st.integers(1, 2))):
        ps = paths(doc)
        kind = draw(st.sampled_from(["set"] * 6 + ["delete", "add"])) if ps else "add"
        if kind == "add" or not ps:
            maps = [()] + [p for p in ps if isinstance(get(doc, p), dict)]
            target = get(doc, draw(st.sampled_from(maps)))
            key = draw(st.text(min_size=1, max_size=8))
        else:
            p = draw(st.sampled_from(ps))
            target = doc
            for k in p[:-1]:
                target = target[k]
            key = p[-1]
        if kind == "delete":
            del target[key]
        elif isinstance(target, list) and not isinstance(key, int):
            target.append(draw(values))
        else:
            target[key] = draw(values)
    return doc


def assert_one_line_naming(e: XBenchError, path: Path) -> None:
    msg = str(e)
    assert "\n" not in msg, msg
    assert str(path) in msg or path.name in msg, msg


def write(tmp_path: Path, name: str, doc) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, allow_unicode=True) if not isinstance(doc, str) else doc)
    return path


@SETTINGS
@given(doc=broken(TASKS))
def test_task_files_are_accepted_or_refused_in_one_line(tmp_path, doc):
    path = write(tmp_path, "task.yaml", doc)
    try:
        spec = load_task_file(path)
        data, _ = sources(spec)  # the sources are built from the checked parameters
        small = all(not isinstance(v, int) or v <= 10000 for v in data.p.values())
        if spec.dataset.source in GENERATED and small:  # generated here: cheap to build, so build it
            load_splits(spec, data)
    except XBenchError as e:
        assert_one_line_naming(e, path)


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_as_a_task_or_suite_file(tmp_path, text):
    for name, load in (("task.yaml", load_task_file), ("suite.yaml", load_suite)):
        path = write(tmp_path, name, text)
        try:
            load(str(path))
        except XBenchError as e:
            assert_one_line_naming(e, path)


@SETTINGS
@given(doc=broken(SUITES))
def test_suite_files_are_accepted_or_refused_in_one_line(tmp_path, doc):
    path = write(tmp_path, "suite.yaml", doc)
    try:
        load_suite(str(path))  # names and every metric's and explainer's parameters
    except XBenchError as e:
        assert_one_line_naming(e, path)


GOOD_ROW = {"id": "a", "review": "a fine film", "label": "POS", "rationale": [0, 1, 0]}
row_fields = st.fixed_dictionaries({}, optional={"id": values, "review": values, "label": values,
                                                 "rationale": values})
lines = st.lists(st.one_of(row_fields.map(json.dumps), st.just(json.dumps(GOOD_ROW)),
                           st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t)),
                 min_size=0, max_size=5)


@SETTINGS
@given(rows=lines, fmt=st.sampled_from(["mask", "spans", "chars"]), n_test=st.none() | st.integers(-2, 4))
def test_data_rows_are_read_or_refused_in_one_line(tmp_path, rows, fmt, n_test):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(rows) + ("\n" if rows else ""))
    try:
        src = PathSource(test=str(path), text="review", label="label", id="id", rationale="rationale",
                         rationale_format=fmt, label_names=["NEG", "POS"], n_test=n_test)
        src.task_path = str(tmp_path / "task.yaml")
        splits = src.load(0)
        for r in splits.test:  # what was accepted is well formed
            assert isinstance(r.words, list) and all(isinstance(w, str) for w in r.words)
            assert r.label in (0, 1)
            assert r.rationale is None or len(r.rationale) == len(r.words)
    except XBenchError as e:
        msg = str(e)
        assert "\n" not in msg, msg
        assert "data.jsonl" in msg or "n_test" in msg, msg


def test_a_field_name_with_line_breaks_is_still_one_line(tmp_path):
    """Found by the property test: a misspelt field whose name holds a line break (YAML allows it)
    printed a two-line error. Control characters are written as escapes."""
    doc = copy.deepcopy(TASKS["synthetic-sentiment"])
    doc["max\nlength\u2028"] = 3
    path = write(tmp_path, "task.yaml", doc)
    with pytest.raises(XBenchError) as e:
        load_task_file(path)
    assert_one_line_naming(e.value, path)
    assert "max\\nlength\\u2028" in str(e.value)


@pytest.mark.parametrize("task,field,value", [
    ("synthetic-sentiment", "min_words", "abc"), ("synthetic-sentiment", "n_train", None),
    ("synthetic-reviews", "p_strong", [1]), ("synthetic-shapes", "n_train", 1.5),
    ("synthetic-linear", "correlation", True), ("synthetic-reviews", "max_words", 0)])
def test_a_dataset_parameter_of_the_wrong_type_or_value_is_one_line(tmp_path, task, field, value):
    """Found by the property test: before the types were checked, these reached the generator and
    ended in a TypeError or ValueError traceback."""
    doc = copy.deepcopy(TASKS[task])
    doc["dataset"]["params"][field] = value
    path = write(tmp_path, "task.yaml", doc)
    with pytest.raises(XBenchError) as e:
        spec = load_task_file(path)
        data, _ = sources(spec)
        load_splits(spec, data)
    assert_one_line_naming(e.value, path)
    assert field in str(e.value) or "min_words" in str(e.value)
