"""The attribution cache key holds every input of an explanation: changing any one of them (the seed,
each parameter, the data slice, the model's weights, the targets, the explainer's version or code)
is a cache miss, and the same inputs again a hit."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from helpers import LINEAR_TASK
from xbench.explainers.base import Explainer
from xbench.run.config import build_config
from xbench.run.runner import Runner
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task, weights_hash


def explain(runner, task, explainer, targets, seed=0):
    out = runner.explain(task, explainer, np.asarray(targets), weights_hash(task.model.model), seed)
    return out.meta["cache"], out


@pytest.fixture
def setup(tmp_path):
    cfg = build_config([LINEAR_TASK], ["comprehensiveness"], ["lime"])
    return Runner(cfg, tmp_path / "run", progress=False, log=lambda m: None), load_task(parse_task(dict(LINEAR_TASK), "l.yaml"))


def test_every_input_of_an_explanation_is_in_the_cache_key(setup, monkeypatch):
    runner, task = setup
    lime = Explainer.registry.get("lime")
    t = [1, 1, 0, 1]
    assert explain(runner, task, lime(), t)[0] == "miss"
    assert explain(runner, task, lime(), t)[0] == "hit"
    assert explain(runner, task, lime(), t, seed=1)[0] == "miss"  # the run seed
    for k, v in {"n_samples": 150, "kernel_width": 0.5, "alpha": 0.5, "perturbations_per_eval": 8,
                 "patch": 3, "segmentation": "slic"}.items():  # every parameter
        assert k in lime.params
        assert explain(runner, task, lime(**{k: v}), t)[0] == "miss", k
    assert set(lime.params) == {"n_samples", "kernel_width", "alpha", "perturbations_per_eval", "patch", "segmentation"}
    assert explain(runner, task, lime(), [1, 1, 1, 1])[0] == "miss"  # the targets
    fewer = replace(task, examples=task.examples[:3])
    assert explain(runner, fewer, lime(), t[:3])[0] == "miss"  # the data slice
    other = load_task(parse_task({**LINEAR_TASK, "model": {"source": "test-linear", "params": {"bias": 0.5}}}, "b.yaml"))
    assert explain(runner, other, lime(), t)[0] == "miss"  # the model's weights
    monkeypatch.setattr(lime, "version", lime.version + 1)
    assert explain(runner, task, lime(), t)[0] == "miss"  # the explainer's version
    monkeypatch.setattr(lime, "code_fingerprint", lambda self: "edited")
    assert explain(runner, task, lime(), t)[0] == "miss"  # its code
    assert explain(runner, task, lime(), t)[0] == "hit"


def test_a_hit_gives_back_exactly_what_was_computed(setup):
    runner, task = setup
    _, a = explain(runner, task, Explainer.registry.get("lime")(), [1, 1, 0, 1])
    state, b = explain(runner, task, Explainer.registry.get("lime")(), [1, 1, 0, 1])
    assert state == "hit"
    for x, y in zip(a.attributions, b.attributions):
        assert x.tobytes() == y.tobytes()
    assert np.array_equal(a.forward, b.forward) and a.example_ids == b.example_ids
