"""Bad input: one line naming the file, field or example; exit code 2; no traceback."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import LINEAR_TASK
from xbench.cli import main
from xbench.core.errors import XBenchError
from xbench.tasks.catalogue import load_task_file, parse_task


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def write_task(tmp_path, data, name="task.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize("data,needle", [
    ("name: x\n  dataset: [unclosed", "malformed YAML at line"),
    ({**LINEAR_TASK, "replacment": "mask"}, "field 'replacment' is not a known field (did you mean 'replacement'?)"),
    ({**LINEAR_TASK, "replacement": "blank"}, "field 'replacement' must be one of mask, pad, unk, delete"),
    ({**LINEAR_TASK, "max_length": "long"}, "field 'max_length' must be int"),
    ({k: v for k, v in LINEAR_TASK.items() if k != "model"}, "field 'model' is required"),
    ({**LINEAR_TASK, "dataset": {"source": "nope"}}, "field 'dataset.source': unknown dataset source 'nope'"),
    ({**LINEAR_TASK, "dataset": {"source": "test-records", "params": {"x": 1}}}, "field 'dataset.params.x'"),
    ("- just\n- a list\n", "must be a mapping"),
])
def test_malformed_task_files(tmp_path, capsys, data, needle):
    path = write_task(tmp_path, data)
    with pytest.raises(XBenchError) as e:
        load_task_file(path)
    assert str(path) in str(e.value) and needle in str(e.value)
    code, out, err = run_cli(capsys, "run", str(path), "--out", str(tmp_path / "run"))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("xbench: error: ") and needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_unknown_names_list_the_valid_ones(capsys, tmp_path):
    task = write_task(tmp_path, LINEAR_TASK)
    code, _, err = run_cli(capsys, "run", str(task), "--explainers", "occlusoin", "--out", str(tmp_path / "r"))
    assert code == 2 and "unknown explainer 'occlusoin' (did you mean 'occlusion'?)" in err
    assert "integrated_gradients" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "run", str(task), "--metrics", "comprehensivness")
    assert code == 2 and "unknown metric 'comprehensivness'" in err and "sufficiency" in err
    code, _, err = run_cli(capsys, "run", "no-such-task")
    assert code == 2 and "unknown task 'no-such-task'" in err and "synthetic-sentiment" in err
    code, _, err = run_cli(capsys, "run", "--suite", "nosuite")
    assert code == 2 and "unknown suite 'nosuite'" in err and "default" in err
    code, _, err = run_cli(capsys, "list", "things")
    assert code == 2 and err.count("\n") == 1


def test_unknown_explainer_parameter_in_suite(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("metrics: [comprehensiveness]\nexplainers:\n  - lime: {n_sample: 10}\n")
    code, _, err = run_cli(capsys, "run", str(write_task(tmp_path, LINEAR_TASK)), "--suite", str(suite))
    assert code == 2 and f"{suite}: field 'explainers[0]': explainer 'lime' has no parameter 'n_sample'" in err


def test_cli_subprocess_has_no_traceback(tmp_path):
    bad = write_task(tmp_path, "name: [")
    r = subprocess.run([sys.executable, "-m", "xbench", "run", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr and str(bad) in r.stderr


def test_list_json(capsys):
    for what, key in (("tasks", "modality"), ("explainers", "family"), ("metrics", "direction")):
        code, out, _ = run_cli(capsys, "list", what, "--json")
        rows = json.loads(out)
        assert code == 0 and rows and all(key in r for r in rows)
    code, out, _ = run_cli(capsys, "list", "metrics", "--json")
    comp = next(r for r in json.loads(out) if r["name"] == "comprehensiveness")
    assert comp["direction"] == "higher" and comp["range"] == [-1.0, 1.0] and "⌈b·F⌉" in comp["formula"]


def test_shipped_task_and_suite_files_are_valid():
    from xbench.run.config import load_suite
    from xbench.spec.catalogue import suites_dir
    from xbench.tasks.catalogue import task_specs

    specs = task_specs()
    assert "synthetic-reviews" in specs and specs["synthetic-reviews"].default
    assert "synthetic-sentiment" in specs and not specs["synthetic-sentiment"].default
    for p in sorted(Path(suites_dir()).glob("*.yaml")):
        assert load_suite(str(p)).metrics
    assert {"default", "quick", "eraser"} <= {p.stem for p in Path(suites_dir()).glob("*.yaml")}


def test_parse_task_fills_defaults():
    spec = parse_task(dict(LINEAR_TASK), "x.yaml")
    assert spec.target == "predicted" and spec.pooling == "sum" and spec.explained_output == "logit"


def test_execution_flags_are_checked_before_anything_is_written(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    task = write_task(tmp_path, LINEAR_TASK)
    for flags, needle in ((["--device", "cuda"], "--device cuda: no CUDA device is available here"),
                          (["--device", "gpu0"], "expected auto, cpu, cuda or cuda:N"),
                          (["--threads", "0"], "--threads 0: expected a positive integer"),
                          (["--batch-size", "0"], "--batch-size 0: expected a positive integer")):
        code, _, err = run_cli(capsys, "run", str(task), "--out", str(tmp_path / "run"), *flags)
        assert code == 2 and needle in err and err.count("\n") == 1, err
        assert not (tmp_path / "run").exists()
