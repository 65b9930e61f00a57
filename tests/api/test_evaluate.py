"""The public Python API as a user calls it: ``xbench.evaluate`` on a live model, the user's data
(list of dicts, DataFrame, datasets.Dataset, arrays), registered and user explainers, precomputed
attributions; the results as DataFrames, saved as a run directory the CLI reports, checks and
reproduces."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import xbench
from helpers_hub import tiny_bert
from xbench.cli import main
from xbench.core.errors import XBenchError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
DATA = [{"text": "a good film", "label": 1, "rationale": [0, 1, 0]},
        {"text": "a bad boring film", "label": 0, "rationale": [0, 1, 1, 0]},
        {"text": "great fun", "label": 1, "rationale": [1, 1]}]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tiny_bert(tmp_path_factory.mktemp("bert"), ["NEGATIVE", "POSITIVE"])
    return (AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager"),
            AutoTokenizer.from_pretrained(folder), folder)


def code_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_the_documented_example_runs_as_written(bert, tmp_path, monkeypatch, capsys):
    _, _, folder = bert
    code = code_blocks(DOCS)[0]
    assert len([ln for ln in code.splitlines() if ln.strip()]) <= 15
    name = re.search(r'^name = "([^"]+)"', code, re.M).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "docs_example"}
    exec(compile(code.replace(f'"{name}"', repr(str(folder))), str(DOCS), "exec"), ns)
    res = ns["results"]
    lb = res.leaderboard
    assert set(lb["explainer"]) == {"integrated_gradients", "occlusion", "grad_x_input", "precomputed:my_tool"}
    assert {"mean", "ci_low", "ci_high", "rank_group"} <= set(lb.columns)
    assert {"comprehensiveness", "token_f1", "peak_memory"} <= set(lb["metric"])
    saved = tmp_path / "runs" / "my-model"
    assert (saved / "report.html").is_file() and (saved / "inputs" / "custom.yaml").is_file()
    assert len(res.scores) == len(lb) * 2  # two examples per cell
    # the saved run is a normal run directory for the CLI
    assert main(["check", "--baseline", str(saved), str(saved)]) == 0
    assert main(["leaderboard", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "grad_x_input" in out and "precomputed:my_tool" in out


def test_saved_api_run_reproduces_from_its_directory_alone(bert, tmp_path, monkeypatch, capsys):
    from api.fns import grad_norm  # noqa: F401  (imported by name below)

    model, tok, _ = bert
    attrs = {"by_id": {"0": [0.0, 1.0, 0.0], "1": [0.0, 1.0, 1.0, 0.0], "2": [1.0, 1.0]}}
    res = xbench.evaluate(model, DATA, tokenizer=tok, rationale="rationale", attributions=attrs,
                          explainers=["occlusion", "api.fns:grad_norm", xbench.Explainer.registry.get("random")],
                          metrics=["comprehensiveness", "sufficiency", ("token_f1", {"examples": "all"}), "seconds"],
                          out=tmp_path / "a")
    saved = res.save(tmp_path / "saved")
    shutil.rmtree(tmp_path / "a")  # only the saved directory is left
    cache = Path(xbench.core.cache.cache_dir("precomputed"))
    shutil.rmtree(cache, ignore_errors=True)  # the precomputed attributions come back from inputs/
    from xbench.explainers import custom

    custom._LOADED.clear()
    code = main(["reproduce", str(saved.path), "--out", str(tmp_path / "again"), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "identical:" in out and "model weights same" in out
    # precomputed attributions are scored as given: exact on the gold words ("great fun" is all rationale:
    # every ranking would score 1, so it is left out, not scored)
    s = saved.scores
    tf1 = s[(s.explainer == "precomputed:by_id") & (s.metric == "token_f1")]
    assert list(tf1["value"][:2]) == [1.0, 1.0] and tf1["error"].iloc[2].startswith("skipped: the rationale covers")


def test_dataframe_and_dataset_inputs_give_the_same_scores(bert, tmp_path):
    import datasets
    import pandas as pd

    model, tok, _ = bert
    kw = dict(tokenizer=tok, rationale="rationale", explainers=["occlusion"], metrics=["comprehensiveness"])
    a = xbench.evaluate(model, DATA, out=tmp_path / "a", **kw).scores
    b = xbench.evaluate(model, pd.DataFrame(DATA), out=tmp_path / "b", **kw).scores
    c = xbench.evaluate(model, datasets.Dataset.from_list(DATA), out=tmp_path / "c", **kw).scores
    assert a["value"].tolist() == b["value"].tolist() == c["value"].tolist()


def test_a_torch_module_on_arrays_gets_its_exact_attribution(tmp_path, capsys):
    from api.fns import Linear2

    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4)).astype(np.float32)
    y = (X @ np.arange(1.0, 5.0) > 0).astype(int)
    masks = np.tile([0, 0, 1, 1], (12, 1))
    res = xbench.evaluate(Linear2(), (X, y, masks), explainers=["integrated_gradients", "occlusion", "random"],
                          metrics=["comprehensiveness", "token_f1"], out=tmp_path / "t")
    a = np.load(tmp_path / "t" / "explanations" / "custom" / "occlusion.npz")
    # occlusion of feature j on logit w·x from the column mean: w_j (x_j − mean_j) in probability terms
    assert a["lengths"].tolist() == [4] * 12
    assert res.mean("integrated_gradients", "token_f1") >= res.mean("random", "token_f1")
    assert main(["reproduce", str(tmp_path / "t"), "--out", str(tmp_path / "t2"), "--no-progress"]) == 0
    assert "identical:" in capsys.readouterr().out


def test_a_module_defined_in_a_notebook_runs_but_says_it_cannot_be_reproduced(tmp_path, capsys):
    import torch

    class Net(torch.nn.Module):  # local: like a class defined in a notebook cell
        def forward(self, x):
            return torch.stack([-x.sum(1), x.sum(1)], 1)

    Net.__module__ = "__main__"
    X = np.ones((3, 2), dtype=np.float32)
    res = xbench.evaluate(Net(), (X, np.array([1, 1, 1])), explainers=["occlusion"], metrics=["comprehensiveness"],
                          out=tmp_path / "nb")
    assert len(res.leaderboard) == 1
    assert main(["reproduce", str(tmp_path / "nb"), "--out", str(tmp_path / "nb2")]) == 2
    err = capsys.readouterr().err
    assert "defined in a script or notebook" in err and err.count("\n") == 1


@pytest.mark.parametrize("kw,needle", [
    ({"text": "review"}, "data: row 0: no field 'review'"),
    ({"attributions": {"x": [np.ones(3)]}}, "attributions['x']: 1 arrays for 3 examples"),
    ({"explainers": [42]}, "explainer 42"),
    ({"explainers": ["occlusoin"]}, "unknown explainer 'occlusoin' (did you mean 'occlusion'?)"),
])
def test_bad_input_is_one_clear_line(bert, tmp_path, kw, needle):
    model, tok, _ = bert
    with pytest.raises(XBenchError) as e:
        xbench.evaluate(model, DATA, tokenizer=tok, metrics=["comprehensiveness"], out=tmp_path / "x", **kw)
    assert needle in str(e.value) and "\n" not in str(e.value)
