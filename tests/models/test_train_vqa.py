"""train-vqa: deterministic from the seed, cached by the training data (shared by the visual and the
prior task), held-out accuracy measured on every load and held to min_accuracy."""
import numpy as np
import pytest

from xbench.core.errors import XBenchError
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task

TASK = {
    "name": "vqa-t", "modality": "multimodal", "patch": 4, "rationale": True, "missing_rationale": "skip",
    "dataset": {"source": "vqa-shapes", "params": {"n_train": 2000, "n_test": 200, "test_questions": "prior"}},
    "model": {"source": "train-vqa", "params": {"epochs": 6, "d": 32, "n_layer": 1}},
}


def load(data, n=4):
    return load_task(parse_task(data, "t.yaml"), n=n)


def test_trained_deterministically_cached_and_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / "a"))
    a = load(TASK)
    info = a.info["model"]
    assert info["cache"] == "miss" and set(info["test_accuracy_by_question"]) == {"prior"}
    # the language prior (copy the colour word) is learnt fast: far above chance (1/3)
    assert info["test_accuracy"] > 0.75
    visual = {**TASK, "name": "vqa-v", "dataset": {**TASK["dataset"],
                                                   "params": {**TASK["dataset"]["params"], "test_questions": "visual"}}}
    b = load(visual)
    assert b.info["model"]["cache"] == "hit" and b.info["model"]["cache_path"] == info["cache_path"]
    assert set(b.info["model"]["test_accuracy_by_question"]) == {"exist", "colour", "count"}
    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / "b"))
    c = load(TASK)
    assert c.info["model"]["cache"] == "miss" and c.info["model"]["weights_sha256"] == info["weights_sha256"]
    for p, q in zip(a.model.model.parameters(), c.model.model.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())


def test_min_accuracy_is_enforced_on_cache_hits_too(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path))
    load(TASK)
    with pytest.raises(XBenchError, match="field 'model.min_accuracy': trained model reached .* below 0.999"):
        load({**TASK, "model": {**TASK["model"], "min_accuracy": 0.999},
              "dataset": {**TASK["dataset"], "params": {**TASK["dataset"]["params"], "test_questions": "visual"}}})


def test_patch_must_divide_the_image():
    with pytest.raises(XBenchError, match="field 'model.params.patch': 5 must divide the image sides"):
        load({**TASK, "model": {**TASK["model"], "params": {**TASK["model"]["params"], "patch": 5}}})
