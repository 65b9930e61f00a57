"""ERASER datasets with a query (BoolQ's question, FEVER's claim): the query is the second segment,
so a task can explain the passage alone (``perturb_segments: [0]``) with the question fixed."""
from __future__ import annotations

import json

import pytest

from xbench.data.base import DatasetSource
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task

DOCS = {"d0": "the capital of france is paris .\nit lies on the seine .",
        "d1": "the sun is a star .\nit is very hot ."}
ANNS = [("q0", "True", "d0", "is paris the capital of france", (3, 6)),
        ("q1", "False", "d1", "is the sun a planet", (3, 5)),
        ("q2", "True", "d1", "is the sun hot", (8, 10))]


@pytest.fixture
def boolq(tmp_path):
    (tmp_path / "docs").mkdir()
    for d, text in DOCS.items():
        (tmp_path / "docs" / d).write_text(text + "\n")
    for split in ("train", "test"):
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for a, c, d, q, (s, e) in ANNS:
                words = " ".join(DOCS[d].split("\n")).split()
                ev = {"docid": d, "start_token": s, "end_token": e, "text": " ".join(words[s:e])}
                f.write(json.dumps({"annotation_id": a, "classification": c, "query": q, "evidences": [[ev]]}) + "\n")
    return tmp_path


def test_the_query_is_the_second_segment(boolq):
    src = DatasetSource.registry.get("eraser")(path=str(boolq), shuffle=False)
    splits = src.load(0)
    r = splits.test[0]
    assert r.words_b == "is paris the capital of france".split()
    n = len(" ".join(DOCS["d0"].split("\n")).split())
    gold = [int(3 <= i < 6) for i in range(n)]
    assert r.rationale == gold + [0] * 6  # the evidence is in the passage only
    assert splits.info["query"].startswith("pair")
    none = DatasetSource.registry.get("eraser")(path=str(boolq), query="none", shuffle=False).load(0)
    assert none.test[0].words_b is None and none.info["query"] == "none"


def test_movies_style_constant_queries_are_left_out_and_say_so():
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "eraser-mini"
    splits = DatasetSource.registry.get("eraser")(path=str(fixture)).load(0)
    assert all(r.words_b is None for r in splits.test)
    assert splits.info["query"] == "none (every annotation asks 'What is the sentiment of this review?')"


def test_a_task_explains_the_passage_with_the_question_fixed(boolq):
    from helpers_hub import tiny_bert

    folder = tiny_bert(boolq / "bert", ["False", "True"])
    spec = parse_task({"name": "boolq", "modality": "text", "granularity": "words", "rationale": True,
                       "perturb_segments": [0], "max_length": 64,
                       "dataset": {"source": "eraser", "params": {"path": str(boolq), "shuffle": False}},
                       "model": {"source": "hub", "params": {"name": str(folder)}}}, str(boolq / "t.yaml"))
    task = load_task(spec)
    ex = task.examples[0]
    assert ex.features == " ".join(DOCS["d0"].split("\n")).split()  # the passage's words only
    assert list(ex.rationale) == [int(3 <= i < 6) for i in range(len(ex.features))]
    q_ids = task.model.tokenizer("is paris the capital of france".split(), is_split_into_words=True,
                                 add_special_tokens=False)["input_ids"]
    fixed = [int(t) for t, f in zip(ex.input_ids, ex.feature_ids) if f < 0]
    assert all(t in fixed for t in q_ids)  # the question's tokens are never removed
