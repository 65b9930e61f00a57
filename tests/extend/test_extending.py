"""Extending xbench is one new file each: a modality (``timeseries.py``), an explainer
(``position.py``), a metric (``top1_drop.py``) and a task (``timeseries.yaml``, with its data and model
written here). Nothing in xbench is edited; the run goes through the CLI like any other, and the
values are checked by hand on a model whose answer is known."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from xbench.cli import main
from xbench.results.leaderboard import read_scores

HERE = Path(__file__).parent
# x[:, c, t]: class-1 logit = sum of the last step's channels (timeseries_model.LastStepNet, w = 1)
X = np.array([[[0.0, 1.0, -1.0, 0.5, 2.0], [0.0, 0.0, 0.0, 1.0, 1.0]],
              [[1.0, 1.0, 1.0, 1.0, -3.0], [0.0, 0.0, 0.0, 0.0, 1.0]],
              [[0.5, 0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]], dtype=np.float32)
MASK = np.zeros((3, 5), dtype=np.int8)
MASK[:, -1] = 1  # the gold rationale: the last step decides


@pytest.fixture
def toy_task(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    from extend.timeseries_model import LastStepNet

    for f in ("timeseries.yaml",):
        shutil.copy(HERE / f, tmp_path / f)
    y = (X[:, :, -1].sum(1) > 0).astype(np.int64)
    np.savez(tmp_path / "series.npz", x=X, y=y, mask=MASK, ids=np.array(["s0", "s1", "s2"]),
             label_names=np.array(["neg", "pos"]))
    save_file(LastStepNet().state_dict(), str(tmp_path / "series-model.safetensors"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "timeseries.yaml"


def test_a_new_modality_explainer_metric_and_task_run_end_to_end(toy_task, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", str(toy_task), "--out", str(out), "--no-progress", "--allow-failures",
                 "--explainers", "extend.position:Recency,occlusion,saliency,random",
                 "--metrics", "extend.top1_drop:Top1Drop,comprehensiveness,deletion_auc,token_f1,max_sensitivity,seconds"])
    err = capsys.readouterr().err
    assert code == 0, err
    # saliency of a step that does not reach the output is exactly 0: max-sensitivity is undefined there
    assert "attributions are all zero" in err
    s = read_scores(out / "scores.csv")
    v = s.set_index(["explainer", "metric", "example"])["value"]
    # by hand: p = sigmoid(z), z = last step's channel sum; removing the last step under "hold" gives it
    # the value of step 3 (the last kept one)
    z = X[:, :, -1].sum(1)
    z_hold = X[:, :, -2].sum(1)
    pred = (z > 0).astype(int)
    p_target = np.where(pred == 1, 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(z)))
    p_removed = np.where(pred == 1, 1 / (1 + np.exp(-z_hold)), 1 / (1 + np.exp(z_hold)))
    for i, ex in enumerate(["s0", "s1", "s2"]):
        # recency ranks the last step first: its top-1 drop is removing the last step
        assert v[("recency", "top1_drop", ex)] == pytest.approx(p_target[i] - p_removed[i], abs=1e-6)
        assert v[("recency", "token_f1", ex)] == 1.0  # its top-1 is the gold step
    # occlusion finds the deciding step as well as recency; random does worse on average
    assert s[(s.explainer == "random") & (s.metric == "top1_drop")]["value"].mean() < \
        s[(s.explainer == "occlusion") & (s.metric == "top1_drop")]["value"].mean()
    # the modality's policy is recorded with every result
    assert set(s["replacement"]) == {"hold"}
    manifest = (out / "manifest.json").read_text()
    assert '"baseline": "last kept step"' in manifest and "extend.timeseries:TimeSeriesModality" in manifest


def test_the_toy_modality_materialises_in_one_place(toy_task):
    from xbench.tasks.catalogue import load_task_file
    from xbench.tasks.task import load_task

    task = load_task(load_task_file(toy_task))
    ex = task.examples[0]
    rows, keys = task.removal.apply(ex, np.array([[1, 0, 0, 1, 0]], dtype=bool))
    x = ex.materialize(np.array([[1, 0, 0, 1, 0]], dtype=bool))[0]
    np.testing.assert_array_equal(x[0], [0.0, 0.0, 0.0, 0.5, 0.5])  # held: t1, t2 take t0's; t4 takes t3's
    logits = task.model.outputs(rows)
    assert logits[0, 1] == pytest.approx(float(x[:, -1].sum()))
    assert task.model.n_forward == 1 and isinstance(task.model.model, torch.nn.Module)
