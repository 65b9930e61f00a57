"""One example's failure is that example's failure: an explainer or metric that raises (or returns the
wrong shape) on some examples fails those examples with its reason, counted in n_failed, and the run
goes on. A one-word input goes through every explainer."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from helpers import LINEAR_TASK
from xbench.cli import main
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric
from xbench.results.leaderboard import read_scores


def task_file(tmp_path, rows):
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {**LINEAR_TASK, "name": "words", "dataset": {"source": "path", "params": {
        "test": "data.jsonl", "text": "text", "label": "label", "label_names": ["neg", "pos"],
        "rationale": "rationale"}}}
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


ROWS = [{"text": "great", "label": 1, "rationale": [1]},
        {"text": "bad the plot", "label": 0, "rationale": [1, 0, 0]},
        {"text": "fine film", "label": 1, "rationale": [1, 0]}]


def test_a_one_word_input_goes_through_every_explainer(tmp_path, capsys):
    path = task_file(tmp_path, ROWS)
    names = [n for n in Explainer.registry.names() if Explainer.registry.get(n).__module__.startswith("xbench.")]
    code = main(["run", str(path), "--out", str(tmp_path / "run"), "--no-progress", "--explainers", ",".join(names),
                 "--metrics", "comprehensiveness,sufficiency,deletion_auc,token_f1,seconds"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and code in (0, 2), err
    s = read_scores(tmp_path / "run" / "scores.csv")
    one = s[(s.example == "test-0") & (s.metric == "comprehensiveness")].set_index("explainer")
    applicable = [n for n in names if n != "grad_cam"]  # an image method
    assert set(one.index) == set(applicable)
    # every explainer that can explain one word does: with one feature, removing it is the whole drop
    ok = one[one.error == ""]
    assert {"occlusion", "kernel_shap", "lime", "integrated_gradients", "random"} <= set(ok.index), one[["value", "error"]]
    # the test model has no attention weights: those explainers fail each example with the reason, and
    # the run reports it once, naming the explainer
    att = one.loc["attention"]
    assert att["error"].startswith("explainer attention failed: RuntimeError: model returned no attention weights")
    assert "explainer attention on task words: failed on 3 example(s)" in err


class Flaky(Explainer):
    """Raises on the second example, the wrong shape on the third."""

    def attribute(self, inputs, seed):
        ex = inputs.example
        if ex.id == "b":
            raise ValueError("boom")
        return np.ones(ex.n_features + (1 if ex.id == "c" else 0))


class Picky(Metric):
    """A metric plugin that raises on the first example."""

    family, direction, ideal, range = "faithfulness", "higher", 1.0, (0.0, 1.0)
    formula = "1"

    def score_one(self, ctx, i, state):
        if i == 0:
            raise KeyError("no such thing")
        return 1.0


class PickyPlanner(Metric):
    """A metric plugin whose planning raises on the second example and scoring on the third."""

    family, direction, ideal, range = "faithfulness", "higher", 1.0, (0.0, 1.0)
    formula = "1"

    def plan_one(self, ctx, i):
        if i == 1:
            raise IndexError("no such position")
        return i

    def score_one(self, ctx, i, state):
        if i == 2:
            raise ValueError("cannot score")
        return 1.0


Flaky.name, Picky.name, PickyPlanner.name = "flaky", "picky", "picky_planner"


def test_a_plugin_that_raises_or_returns_the_wrong_shape_fails_those_examples_only(tmp_path, linear_task):
    from helpers import run_metric

    expl = Flaky().explain(linear_task, linear_task.examples, [1] * 4)
    assert expl.errors[0] is None and expl.errors[1] == "explainer flaky failed: ValueError: boom"
    assert expl.errors[2] == "explainer flaky returned shape (4,), expected (3,): one score per feature"
    assert np.isnan(expl.attributions[1]).all() and np.isfinite(expl.attributions[0]).all()
    values, errors, _ = run_metric(linear_task, Metric.registry.get("comprehensiveness")(), expl=expl)
    assert errors[1] == expl.errors[1] and errors[2] == expl.errors[2] and errors[0] is None
    values, errors, _ = run_metric(linear_task, Picky(), expl=Explainer.registry.get("occlusion")().explain(
        linear_task, linear_task.examples, [1] * 4))
    assert errors[0] == "metric picky failed: KeyError: 'no such thing'" and list(values[1:]) == [1.0] * 3
    values, errors, _ = run_metric(linear_task, PickyPlanner(), expl=Explainer.registry.get("occlusion")().explain(
        linear_task, linear_task.examples, [1] * 4))
    assert errors[1] == "metric picky_planner failed: IndexError: no such position"
    assert errors[2] == "metric picky_planner failed: ValueError: cannot score"
    assert errors[0] is None and errors[3] is None and values[0] == values[3] == 1.0
    assert np.isnan(values[1]) and np.isnan(values[2])
