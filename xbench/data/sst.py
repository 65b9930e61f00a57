"""``sst-trees``: the Stanford Sentiment Treebank (Socher et al. 2013) from its PTB-format trees.

Each line of ``{train,dev,test}.txt`` is one sentence as a labelled binary parse tree,
``(2 (3 (3 Effective) (2 but)) (1 (1 too-tepid) (2 biopic)))``: every node, leaves included,
carries a sentiment label 0-4 (very negative .. very positive, 2 neutral).

Binary view (SST-2): sentences whose root is 2 are dropped; roots 0/1 are *negative* (0),
3/4 *positive* (1). Counts on the released files: 8,544/1,101/2,210 sentences, of which
6,920/872/1,821 are binary.

Word-level gold rationale, from each leaf's own label (a word's sentiment out of context):
with ``polar_threshold`` t (3 or 4), a word of a **positive** sentence is in the rationale
when its leaf label is >= t, and a word of a **negative** sentence when its label is <= 4 - t.
So t = 3 marks the words that lean the sentence's way (3/4 or 0/1), and t = 4 only the
strongly polar ones (4 or 0). Words polar the other way are counter-evidence, not rationale.

The release labels every ``-LRB-`` leaf 1 and every ``-RRB-`` leaf 3, whatever the sentence
(an artifact of phrase labelling), so bracket tokens are never rationale. With ``unescape``
(default) the PTB escapes become the characters they stand for in ``words``: ``-LRB-`` ``(``,
``-RRB-`` ``)``, ``\\/`` ``/``, ``\\*`` ``*``.

A test sentence with an empty rationale cannot be scored for plausibility; with
``drop_empty_rationale`` (default) such sentences are dropped from the test split and counted
in ``Splits.info["dropped_empty_rationale"]``. The training split keeps them (training does
not need rationales; dropping them would change the training distribution).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from xbench.core.errors import XBenchError
from xbench.data.base import DatasetSource, Record, Splits
from xbench.data.files import check_limit

BRACKETS = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
# one match per lexeme: a whole leaf "(3 gem)", an opening "(3", a ")", a bad opening, a stray word
_LEX = re.compile(r"\(([0-4])\s+([^()]+?)\s*\)|\(([0-4])(?=[\s(])|(\))|\(\s*([^\s()]*)|([^\s()]+)")


@dataclass
class Tree:
    """A parsed sentence: its root label, and each leaf's word and own label, in reading order."""

    label: int
    words: list[str]
    leaf_labels: list[int]


def parse_tree(line: str, where: str = "<tree>") -> Tree:
    """Parse one PTB sentiment tree, ``(label child child)`` with leaves ``(label word)``.

    Hand-written: nltk's ``Tree.fromstring`` reads the brackets but returns labels as strings
    with no error positions, and no library reads SST's labelled leaves; the grammar is a leaf,
    an opening bracket with a label, and a closing bracket, read with one regex and a stack.
    A leaf holding several words (the release has ``(2 8 1\\/2)``) gives each word its label."""
    words: list[str] = []
    leaf_labels: list[int] = []
    children: list[int] = []  # children counted so far, per open node
    labels: list[int] = []
    root = None
    for m in _LEX.finditer(line):
        leaf_label, leaf_text, open_label, close, bad_label, stray = m.groups()
        col = m.start() + 1
        if root is not None:
            if close is not None:
                raise XBenchError(f"{where}: unbalanced ')' at column {col}")
            raise XBenchError(f"{where}: text after the end of the tree at column {col}: {m.group(0)!r}")
        if leaf_label is not None:
            parts = leaf_text.split()
            words += parts
            leaf_labels += [int(leaf_label)] * len(parts)
            if children:
                children[-1] += 1
            else:
                root = int(leaf_label)
        elif open_label is not None:
            children.append(0)
            labels.append(int(open_label))
        elif close is not None:
            if not children:
                raise XBenchError(f"{where}: unbalanced ')' at column {col}")
            n, label = children.pop(), labels.pop()
            if n == 0:
                raise XBenchError(f"{where}: node with label {label} has no children (column {col})")
            if children:
                children[-1] += 1
            else:
                root = label
        elif bad_label is not None:
            if bad_label in ("0", "1", "2", "3", "4"):  # "(3)"
                raise XBenchError(f"{where}: node with label {bad_label} has no children (column {col})")
            raise XBenchError(f"{where}: expected a label 0-4 after '(' at column {col}, "
                              f"got {bad_label or 'nothing'!r}")
        else:
            raise XBenchError(f"{where}: unexpected {stray!r} at column {col} "
                              f"(a word must be inside '(label word)')")
    if children:
        raise XBenchError(f"{where}: {len(children)} unclosed '('")
    if root is None:
        raise XBenchError(f"{where}: empty line (expected a tree like '(3 (2 a) (4 gem))')")
    return Tree(root, words, leaf_labels)


def read_trees(path: Path) -> list[Tree]:
    """Every tree of a file, one per non-empty line; errors name the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise XBenchError(f"{path}: cannot read SST trees ({e})") from None
    return [parse_tree(line, f"{path}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


def unescape(word: str) -> str:
    """PTB escapes to characters: -LRB- to (, \\/ to /, \\* to *."""
    return BRACKETS.get(word, word.replace("\\/", "/").replace("\\*", "*"))


def binary_rationale(tree: Tree, polar_threshold: int) -> list[int]:
    """0/1 per word: leaves whose own label is on the sentence's side by at least the threshold
    (>= t in a positive sentence, <= 4 - t in a negative one); bracket tokens never."""
    positive = tree.label >= 3
    return [int(w not in BRACKETS and (lab >= polar_threshold if positive else lab <= 4 - polar_threshold))
            for w, lab in zip(tree.words, tree.leaf_labels)]


class SSTTrees(DatasetSource):
    """Stanford Sentiment Treebank, binary (SST-2) view; rationale from the leaves' own labels."""

    name = "sst-trees"
    params = {
        "path": "sst-ptb-trees",  # folder with train.txt, dev.txt, test.txt (data roots apply)
        "train_split": "train",
        "test_split": "test",     # or "dev"
        "n_train": None,
        "n_test": None,
        "polar_threshold": 3,     # 3: words labelled 3/4 (0/1) are rationale; 4: only 4 (0)
        "drop_empty_rationale": True,
        "unescape": True,
    }

    def locate(self) -> dict[str, Path]:
        root = self.data_path(self.p["path"])
        files = {s: root / f"{self.p[f'{s}_split']}.txt" for s in ("train", "test")}
        for f in files.values():
            if not f.is_file():
                raise XBenchError(f"needs data: {f} not found (an SST folder holds train.txt, dev.txt, test.txt)")
        return files

    def size(self) -> str:
        """Binary sentences per split, from the root labels (``≤``: test sentences may be dropped)."""
        try:
            files = self.locate()
            n = {s: sum(1 for ln in open(f, encoding="utf-8") if ln.strip() and ln.lstrip()[1:2] != "2")
                 for s, f in files.items()}
        except (XBenchError, OSError):
            return super().size()
        return self.capped_size(n, self.p["drop_empty_rationale"])

    def load(self, seed: int) -> Splits:
        p = self.p
        if p["polar_threshold"] not in (3, 4):
            raise XBenchError(f"dataset source 'sst-trees': field 'dataset.params.polar_threshold' must be "
                              f"3 or 4; got {p['polar_threshold']!r}")
        info: dict = {"dropped_neutral": {}, "dropped_empty_rationale": {}, "polar_threshold": p["polar_threshold"]}
        out = {}
        for split, path in self.locate().items():
            trees = read_trees(path)
            recs, neutral, empty = [], 0, 0
            for n, t in enumerate(trees):
                if t.label == 2:
                    neutral += 1
                    continue
                rationale = binary_rationale(t, p["polar_threshold"])
                if split == "test" and p["drop_empty_rationale"] and not any(rationale):
                    empty += 1
                    continue
                words = [unescape(w) for w in t.words] if p["unescape"] else list(t.words)
                recs.append(Record(f"{path.stem}-{n}", words, int(t.label >= 3), rationale,
                                   meta={"root_label": t.label}))
            limit = check_limit(p[f"n_{split}"], f"n_{split}", self.task_path or "<task>")
            out[split] = recs if limit is None else recs[:limit]
            info["dropped_neutral"][split] = neutral
            info["dropped_empty_rationale"][split] = empty
            info[f"n_{split}"] = len(out[split])
        return Splits(out["train"], out["test"], ["negative", "positive"], info)
