"""NaN attributions and empty rationales are counted in n_failed, reported, and exit 2."""
import json

import numpy as np
import pandas as pd
import yaml

from helpers import LINEAR_TASK
from xbench.cli import main
from xbench.explainers.base import Explainer
from xbench.results.leaderboard import read_scores


class NanOnSecond(Explainer):
    """Test explainer: exact scores except NaN for the second example."""

    name = "test-nan"

    def attribute(self, inputs, seed):
        ex = inputs.example
        return np.full(ex.n_features, np.nan) if ex.id == "b" else np.arange(ex.n_features, 0, -1.0)


def run(tmp_path, capsys, task, *extra):
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(task))
    out = tmp_path / "run"
    code = main(["run", str(path), "--out", str(out), "--suite", "eraser", "--no-progress", *extra])
    captured = capsys.readouterr()
    return code, captured.err, out


def test_nan_attributions_are_counted_not_dropped(tmp_path, capsys):
    code, err, out = run(tmp_path, capsys, LINEAR_TASK, "--explainers", "test-nan,occlusion")
    assert code == 2
    assert "explainer test-nan on task linear: NaN or infinite attributions for 1 example(s), first b" in err
    assert "Traceback" not in err
    lb = pd.DataFrame(json.loads((out / "leaderboard.json").read_text()))
    nan_rows = lb[lb.explainer == "test-nan"]
    assert (nan_rows.n_failed == 1).all() and (nan_rows.n == 3).all()
    assert (lb[lb.explainer == "occlusion"].n_failed == 0).all()
    scores = read_scores(out / "scores.csv")
    failed = scores[(scores.explainer == "test-nan") & (scores.example == "b")]
    assert len(failed) == 6 and (failed.error == "NaN or infinite attributions").all()  # the eraser suite's 6
    # --allow-failures keeps the results and exits 0
    code, _, _ = run(tmp_path, capsys, LINEAR_TASK, "--explainers", "test-nan", "--allow-failures", "--overwrite")
    assert code == 0


def test_empty_rationale_names_the_example(tmp_path, capsys):
    task = {**LINEAR_TASK, "dataset": {"source": "test-records", "params": {"empty_rationale": True}}}
    code, err, out = run(tmp_path, capsys, task, "--explainers", "occlusion")
    assert code == 2
    assert "task.yaml: example c: empty gold rationale" in err
    lb = pd.DataFrame(json.loads((out / "leaderboard.json").read_text()))
    plaus = lb[lb.family == "plausibility"]
    assert (plaus.n_failed == 1).all() and (plaus.n == 3).all()
    assert (lb[lb.family == "faithfulness"].n_failed == 0).all()  # faithfulness does not need it
