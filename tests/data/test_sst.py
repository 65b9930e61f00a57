"""SST from PTB trees (``sst-trees``): parser, binary view, leaf-label rationales."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import shared_data
from xbench.data.sst import SSTTrees, binary_rationale, parse_tree, read_trees
from xbench.core.errors import XBenchError
from xbench.tasks.catalogue import load_task_file

REPO = Path(__file__).resolve().parents[2]


def real_sst() -> Path | None:
    return shared_data("sst-ptb-trees")


def test_parse_keeps_every_leaf_label():
    t = parse_tree("(2 (3 (3 Effective) (2 but)) (1 (1 too-tepid) (2 biopic)))")
    assert (t.label, t.words, t.leaf_labels) == (2, ["Effective", "but", "too-tepid", "biopic"], [3, 2, 1, 2])
    assert parse_tree("(4 gem)").words == ["gem"]
    assert parse_tree("(3 (2 8 1\\/2) (4 gem))").words == ["8", "1\\/2", "gem"]  # a leaf of two words
    assert parse_tree("(3(2 a)(4 b))").leaf_labels == [2, 4]


def test_rationale_rule_by_hand():
    # positive sentence: words labelled >= 3 (threshold 3) or == 4 (threshold 4); -LRB-/-RRB- never
    pos = parse_tree("(4 (2 (1 -LRB-) (2 (2 Taymor) (3 -RRB-))) (4 (3 (3 warm) (4 brilliant)) (1 (1 dull) (2 .))))")
    assert pos.words == ["-LRB-", "Taymor", "-RRB-", "warm", "brilliant", "dull", "."]
    assert binary_rationale(pos, 3) == [0, 0, 0, 1, 1, 0, 0]
    assert binary_rationale(pos, 4) == [0, 0, 0, 0, 1, 0, 0]
    # negative sentence: words labelled <= 1 (threshold 3) or == 0 (threshold 4)
    neg = parse_tree("(1 (2 (2 Effective) (2 but)) (0 (1 too-tepid) (0 (0 awful) (3 fun))))")
    assert binary_rationale(neg, 3) == [0, 0, 1, 1, 0]
    assert binary_rationale(neg, 4) == [0, 0, 0, 1, 0]


@pytest.mark.parametrize("line, message", [
    ("(3 (2 a) (2 b)", "1 unclosed '('"),
    ("(3 (2 a)) (2 c)", "text after the end of the tree at column 11"),
    ("(3 (x a))", "expected a label 0-4 after '(' at column 4, got 'x'"),
    ("(3 (2 a) (5 b))", "got '5'"),
    ("(3 (2 a) b)", "unexpected 'b' at column 10"),
    ("(3 (2 a)))", "unbalanced ')' at column 10"),
    ("(3)", "node with label 3 has no children"),
])
def test_parser_errors_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "train.txt"
    f.write_text("(3 (2 a) (4 b))\n" + line + "\n")
    with pytest.raises(XBenchError) as e:
        read_trees(f)
    assert str(e.value).startswith(f"{f}:2: ") and message in str(e.value)


TREES = {
    "train": ["(3 (2 a) (4 gem))", "(2 (2 so) (2 so))", "(1 (2 a) (2 film))", "(0 (2 -LRB-) (0 awful))"],
    "test": ["(4 (2 -LRB-) (2 (4 superb) (3 -RRB-)))", "(2 (2 flat) (2 .))", "(1 (1 -LRB-) (2 meh))",
             "(0 (0 dreadful) (2 c\\/d))"],
}


def _sst(tmp_path: Path) -> Path:
    for split, lines in TREES.items():
        (tmp_path / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_binary_view_and_empty_rationales(tmp_path):
    folder = _sst(tmp_path)
    s = SSTTrees(path=str(folder)).load(0)
    assert s.label_names == ["negative", "positive"]
    # train: the neutral root is dropped, the empty-rationale sentence ("a film", root 1) is kept
    assert [(r.id, r.words, r.label, r.rationale) for r in s.train] == [
        ("train-0", ["a", "gem"], 1, [0, 1]), ("train-2", ["a", "film"], 0, [0, 0]),
        ("train-3", ["(", "awful"], 0, [0, 1])]
    # test: neutral dropped; "( meh" has only the -LRB- leaf labelled 1, so its rationale is empty
    assert [(r.id, r.words, r.label, r.rationale) for r in s.test] == [
        ("test-0", ["(", "superb", ")"], 1, [0, 1, 0]), ("test-3", ["dreadful", "c/d"], 0, [1, 0])]
    assert s.info["dropped_neutral"] == {"train": 1, "test": 1}
    assert SSTTrees(path=str(folder)).size() == "3/≤3"
    assert SSTTrees(path=str(folder), drop_empty_rationale=False, n_train=2).size() == "2/3"
    assert s.info["dropped_empty_rationale"] == {"train": 0, "test": 1}
    kept = SSTTrees(path=str(folder), drop_empty_rationale=False, unescape=False, n_train=1).load(0)
    assert [r.words for r in kept.test] == [["-LRB-", "superb", "-RRB-"], ["-LRB-", "meh"], ["dreadful", "c\\/d"]]
    assert len(kept.train) == 1 and kept.info["dropped_empty_rationale"]["test"] == 0
    strong = SSTTrees(path=str(folder), polar_threshold=4, test_split="train").load(0)
    assert [r.rationale for r in strong.test] == [[0, 1], [0, 1]]  # "a gem" (4), "( awful" (0)
    with pytest.raises(XBenchError, match="polar_threshold' must be 3 or 4"):
        SSTTrees(path=str(folder), polar_threshold=2).load(0)
    with pytest.raises(XBenchError, match="'dataset.params.n_test' must be a positive integer; got -1"):
        SSTTrees(path=str(folder), n_test=-1).load(0)


def test_missing_folder_needs_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = SSTTrees(path="no-such-sst")
    assert src.unavailable().startswith("needs data: no-such-sst")
    with pytest.raises(XBenchError, match="needs data"):
        src.load(0)


def test_task_files_parse():
    for name in ("sst2-bert.yaml",):
        spec = load_task_file(REPO / "tasks" / name)
        assert spec.dataset.source == "sst-trees" and spec.rationale


@pytest.mark.skipif(real_sst() is None, reason="needs ../shared/data/sst-ptb-trees (SST PTB trees)")
def test_real_counts():
    root = real_sst()
    for split, n, n_binary in (("train", 8544, 6920), ("dev", 1101, 872), ("test", 2210, 1821)):
        trees = read_trees(root / f"{split}.txt")
        assert (len(trees), sum(t.label != 2 for t in trees)) == (n, n_binary)
    # -LRB-/-RRB- leaves carry one label each throughout the release (the reason they are excluded)
    labels = {(w, lab) for t in trees for w, lab in zip(t.words, t.leaf_labels) if w in ("-LRB-", "-RRB-")}
    assert labels == {("-LRB-", 1), ("-RRB-", 3)}
    s = SSTTrees(train_split="dev").load(0)  # test split: 1,821 binary, 297 with an empty rationale
    assert len(s.test) == 1821 - 297 == 1524 and s.info["dropped_empty_rationale"]["test"] == 297
    assert sum(sum(r.rationale) for r in s.test) / len(s.test) == pytest.approx(2.186, abs=1e-3)
