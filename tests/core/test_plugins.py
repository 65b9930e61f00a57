"""Plugins: entry points (``xbench.explainers``/``xbench.metrics``), ``module:Class`` names, their
error lines, and the worked example in examples/custom_explainer/ (checked on the linear model,
whose exact attributions are known: tests/helpers.py)."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import LINEAR_TASK, WEIGHTS
from xbench.run.config import load_suite
from xbench.run.config import build_config
from xbench.cli import main
from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer, Explanations
from xbench.metrics.base import Metric
from xbench.core.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_explainer"
#: modules the tests import; removed from sys.modules afterwards so every test imports afresh
MODULES = ("fake_xbench_plugin", "fake_xbench_broken", "my_explainers", "plug_mod", "plug_bad")

PLUGIN_SRC = '''
import numpy as np
from xbench.explainers import Explainer
from xbench.metrics.cost import Seconds


class FakeConst(Explainer):
    """Test plugin: score i = i + 1."""
    name = "fake_const"

    def attribute(self, inputs, seed):
        return np.arange(1.0, inputs.example.n_features + 1)


class FakeSeconds(Seconds):
    """Test plugin metric: seconds, under another name."""
    name = "fake_seconds"


def not_a_class():
    return None
'''


@pytest.fixture(autouse=True)
def clean_registries():
    """Each test starts with fresh entry-point discovery and leaves both registries (and
    sys.modules) as it found them, so plugins registered here do not leak into other tests."""
    saved = [(r, dict(r._classes), dict(r._made)) for r in (Explainer.registry, Metric.registry)]
    for r, _, _ in saved:
        r.reset_plugins()
    yield
    for r, classes, made in saved:
        r._classes.clear()
        r._classes.update(classes)
        r._made.clear()
        r._made.update(made)
        r.reset_plugins()
    for m in list(sys.modules):
        if m.split(".")[0] in MODULES:
            del sys.modules[m]


def make_dist(root: Path, entry_points: str, modules: dict[str, str]) -> Path:
    """A minimal installed distribution ``fake_xbench_plugin`` 0.1 under ``root`` (a sys.path entry)."""
    for name, src in modules.items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(src)
    info = root / "fake_xbench_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-xbench-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return root


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install (on sys.path) a distribution with the given entry points."""

    def install(entry_points: str, extra: dict[str, str] | None = None) -> None:
        root = make_dist(tmp_path / "site", entry_points, {"fake_xbench_plugin": PLUGIN_SRC, **(extra or {})})
        monkeypatch.syspath_prepend(str(root))  # also invalidates importlib's caches

    return install


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def task_file(tmp_path) -> Path:
    p = tmp_path / "linear.yaml"
    p.write_text(yaml.safe_dump(LINEAR_TASK))
    return p


def run_args(task_file: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(task_file), "--metrics", "comprehensiveness", "--out", str(out), "--no-cache",
            "--no-progress", *extra]


def explanations(run: Path, explainer: str) -> dict[str, np.ndarray]:
    e = Explanations.load(run / "explanations" / "linear" / f"{explainer}.npz", explainer, {}, {})
    return dict(zip(e.example_ids, e.attributions))


# ---------------------------------------------------------------- entry points

def test_entry_points_are_discovered_lazily(installed, capsys):
    installed("""
        [xbench.explainers]
        fake_const = fake_xbench_plugin:FakeConst
        other_name = fake_xbench_plugin:FakeConst
        [xbench.metrics]
        fake_seconds = fake_xbench_plugin:FakeSeconds
    """)
    assert "fake_xbench_plugin" not in sys.modules  # nothing imported before a name is asked for
    cls = Explainer.registry.get("fake_const")
    assert cls.__module__ == "fake_xbench_plugin" and cls.name == "fake_const"
    assert Explainer.registry.get("other_name") is cls  # an entry point named unlike its class: an alias
    assert Explainer.registry.canonical("other_name") == "fake_const"
    assert "fake_const" in Explainer.registry.names() and "other_name" not in Explainer.registry.names()
    assert "fake_seconds" in Metric.registry.names()
    code, out, err = cli(capsys, "list", "explainers")
    assert code == 0 and "fake_const" in out and "Test plugin: score i = i + 1." in out and err == ""
    code, out, _ = cli(capsys, "list", "metrics")
    assert code == 0 and "fake_seconds" in out


def test_entry_point_plugins_run_and_join_explainers_all(installed, task_file, tmp_path, capsys):
    installed("""
        [xbench.explainers]
        fake_const = fake_xbench_plugin:FakeConst
        [xbench.metrics]
        fake_seconds = fake_xbench_plugin:FakeSeconds
    """)
    run = tmp_path / "run"
    code, _, err = cli(capsys, *run_args(task_file, run, "--explainers", "fake_const,random",
                                         "--metrics", "comprehensiveness,fake_seconds"))
    assert code == 0, err
    got = explanations(run, "fake_const")
    assert np.array_equal(got["a"], [1, 2, 3, 4]) and np.array_equal(got["d"], [1, 2, 3, 4, 5])
    scores = (run / "scores.csv").read_text()
    assert "fake_const,fake_seconds" in scores and "fake_const,comprehensiveness" in scores
    # `explainers: all` includes plugins for `xbench run`; `xbench publish` keeps the built-ins only
    assert "fake_const" in dict(build_config([str(task_file)]).explainers)
    from xbench.run.publish import publish_config

    published = dict(publish_config("default").explainers)
    assert "fake_const" not in published and "integrated_gradients" in published


@pytest.mark.parametrize("value,needle", [
    ("fake_xbench_plugin:Missing", "failed to load: AttributeError: "),
    ("fake_xbench_broken:Thing", "failed to load: RuntimeError: plugin is broken"),
    ("fake_xbench_plugin:not_a_class", "is not a subclass of xbench's Explainer (got a function)"),
    ("fake_xbench_plugin:FakeSeconds", "is not a subclass of xbench's Explainer (got a class "),
])
def test_broken_entry_point_warns_when_listed_and_fails_when_used(installed, task_file, tmp_path, capsys,
                                                                  value, needle):
    installed(f"""
        [xbench.explainers]
        fake_const = fake_xbench_plugin:FakeConst
        fake_broken = {value}
    """, {"fake_xbench_broken": "raise RuntimeError('plugin is broken')\n"})
    head = (f"explainer plugin entry point 'fake_broken = {value}' (group 'xbench.explainers', "
            f"distribution 'fake-xbench-plugin')")
    code, out, err = cli(capsys, "list", "explainers")
    assert code == 0 and "fake_const" in out  # the healthy plugin is listed
    assert err.count("\n") == 1 and err.startswith(f"xbench: warning: {head}") and needle in err
    code, _, err = cli(capsys, "list", "explainers")
    assert code == 0 and err == ""  # warned once per process
    code, _, err = cli(capsys, *run_args(task_file, tmp_path / "run", "--explainers", "fake_broken"))
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"xbench: error: {head}") and needle in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()
    # another unknown name says which plugins failed
    code, _, err = cli(capsys, *run_args(task_file, tmp_path / "run", "--explainers", "nosuch"))
    assert code == 2 and "unknown explainer 'nosuch'" in err and "plugins that failed to load: 'fake_broken'" in err


# ---------------------------------------------------------------- module:Class

def test_example_module_class_on_the_linear_model(monkeypatch, linear_task):
    """|gradient x input| on the linear bag: each word's embedding row is its weight row, the
    gradient of logit c is e_c, so the score is |W[w, c]| for the target class c."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    cls = Explainer.registry.get("my_explainers:AbsGradInput")
    assert cls.name == "abs_grad_input" and Explainer.registry.get("abs_grad_input") is cls
    ex = linear_task.examples[0]  # "great fine the bad": weights 2, 1, 0, -1
    assert ex.id == "a"
    e = cls().explain(linear_task, [ex], [1])
    assert np.allclose(e.attributions[0], [2.0, 1.0, 0.0, 1.0])  # |−1| for "bad": the absolute value
    assert (e.forward[0], e.backward[0]) == (1, 1)
    assert np.allclose(cls().explain(linear_task, [ex], [0]).attributions[0], 0.0)  # class-0 weights are 0
    # from_baseline: |(e − b) · ∇| with b the [MASK] embedding; give [MASK] the row (0, 0.5)
    mask = int(linear_task.model.replacement_ids["mask"])
    linear_task.model.model.emb.weight.data[mask] = torch_row(0.0, 0.5)
    got = cls(from_baseline=True).explain(linear_task, [ex], [1]).attributions[0]
    assert np.allclose(got, [abs(WEIGHTS[w] - 0.5) for w in "great fine the bad".split()])  # 1.5 .5 .5 1.5
    assert np.allclose(cls().explain(linear_task, [ex], [1]).attributions[0], [2.0, 1.0, 0.0, 1.0])


def test_example_on_a_tabular_task(monkeypatch):
    """Dense inputs: x = (3, 1, 0), w = (2, 1, −1), column means (1, 2, 1): |w ⊙ x| = (6, 1, 0) and
    from the mean baseline |w ⊙ (x − mean)| = |(4, −1, 1)| = (4, 1, 1)."""
    from helpers_dense import TAB_TASK
    from xbench.tasks.catalogue import parse_task
    from xbench.tasks.task import load_task

    monkeypatch.syspath_prepend(str(EXAMPLE))
    cls = Explainer.registry.get("my_explainers:AbsGradInput")
    task = load_task(parse_task(dict(TAB_TASK), "lin-tab.yaml"))
    ex = task.examples[0]
    assert np.array_equal(ex.x, [3, 1, 0])
    assert np.allclose(cls().explain(task, [ex], [1]).attributions[0], [6, 1, 0])
    assert np.allclose(cls(from_baseline=True).explain(task, [ex], [1]).attributions[0], [4, 1, 1])


def torch_row(*values: float):
    import torch

    return torch.tensor(values)


def test_module_class_via_cli_records_the_class_name(monkeypatch, task_file, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    run = tmp_path / "run"
    code, _, err = cli(capsys, *run_args(task_file, run, "--explainers", "my_explainers:AbsGradInput,random"))
    assert code == 0, err
    # predicted classes: a, b, d -> 1 (|W|); c ("bad the plot", logit −1) -> 0, whose weights are 0
    got = explanations(run, "abs_grad_input")
    expect = {r: [abs(WEIGHTS[w]) for w in words.split()] for r, words in
              (("a", "great fine the bad"), ("b", "the film great plot"), ("d", "fine film bad great the"))}
    for rid, want in expect.items():
        assert np.allclose(got[rid], want), rid
    assert np.allclose(got["c"], 0.0)
    scores = (run / "scores.csv").read_text()
    assert "abs_grad_input" in scores and "my_explainers" not in scores


def test_module_class_in_a_suite_with_params(monkeypatch, task_file, tmp_path, capsys):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    suite = tmp_path / "suite.yaml"
    suite.write_text("metrics: [comprehensiveness]\nexplainers:\n"
                     "  - my_explainers:AbsGradInput: {from_baseline: true}\n  - random\n"
                     "n: 2\n")
    s = load_suite(str(suite))
    assert s.explainers == [("abs_grad_input", {"from_baseline": True}), ("random", {})]
    run = tmp_path / "run"
    # --explainers in module:Class form keeps the suite's parameters for that explainer
    code, _, err = cli(capsys, "run", str(task_file), "--suite", str(suite), "--out", str(run), "--no-progress",
                       "--no-cache", "--explainers", "my_explainers:AbsGradInput")
    assert code == 0, err
    e = Explanations.load(run / "explanations" / "linear" / "abs_grad_input.npz", "abs_grad_input", {}, {})
    assert e.example_ids == ["a", "b"] and np.allclose(e.attributions[0], [2, 1, 0, 1])
    import json

    assert json.loads((run / "manifest.json").read_text())["config"]["explainers"] == \
        [["abs_grad_input", {"from_baseline": True}]]


def test_module_class_for_metrics():
    assert Metric.registry.canonical("xbench.metrics.faithfulness:Comprehensiveness") == "comprehensiveness"


BAD_MODULE = "raise RuntimeError('cannot load')\n"
NO_NAME = "from xbench.explainers import Explainer\n\nclass Nameless(Explainer):\n    pass\n"


@pytest.mark.parametrize("spec,module,needle", [
    ("no_such_module_xb:Foo", None,
     "explainer 'no_such_module_xb:Foo': no module named 'no_such_module_xb' (is it installed or on PYTHONPATH?)"),
    ("my_explainers:Nope", None, "explainer 'my_explainers:Nope': module 'my_explainers' has no attribute 'Nope'"),
    ("my_explainers:np", None, "explainer 'my_explainers:np' is not a subclass of xbench's Explainer (got a module)"),
    ("my_explainers:Saliency", None,
     "explainer 'my_explainers:Saliency' is not a subclass of xbench's Explainer (got a class captum."),
    ("plug_bad:X", BAD_MODULE,
     "explainer 'plug_bad:X': importing module 'plug_bad' failed: RuntimeError: cannot load"),
    ("plug_mod:Nameless", NO_NAME,
     "explainer 'plug_mod:Nameless': class Nameless sets no 'name' of its own"),
])
def test_bad_module_class_forms(monkeypatch, task_file, tmp_path, capsys, spec, module, needle):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    if module is not None:
        (tmp_path / f"{spec.split(':')[0]}.py").write_text(module)
        monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = cli(capsys, *run_args(task_file, tmp_path / "run", "--explainers", spec))
    assert code == 2 and err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"metrics: [comprehensiveness]\nexplainers:\n  - random\n  - {spec}\n")
    with pytest.raises(XBenchError) as e:
        load_suite(str(suite))
    assert str(e.value).startswith(f"{suite}: field 'explainers[1]': ") and needle in str(e.value)


def test_module_class_parameters_are_checked(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    suite = tmp_path / "suite.yaml"
    suite.write_text("metrics: [comprehensiveness]\nexplainers:\n  - my_explainers:AbsGradInput: {abs: true}\n")
    with pytest.raises(XBenchError, match=r"field 'explainers\[0\]': explainer 'abs_grad_input' has no "
                                          r"parameter 'abs'; valid: from_baseline"):
        load_suite(str(suite))


def test_registered_prefix_wins_over_module_class():
    made = []
    reg: Registry = Registry("explainer")
    reg.add_prefix("os", lambda rest: made.append(rest) or type("X", (), {"name": f"os:{rest}"}))
    assert reg.canonical("os:path") == "os:path" and made == ["path"]  # the factory, not `import os`


# ---------------------------------------------------------------- the example's files

def test_example_files_are_valid(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    suite = load_suite(str(EXAMPLE / "suite.yaml"))
    assert suite.explainers[0] == ("abs_grad_input", {"from_baseline": False}) and suite.n == 20
    from xbench.gate.contract import load_contract

    c = load_contract(EXAMPLE / "contract.yaml")
    assert set(c.explainers) == {"abs_grad_input"}
    assert set(c.explainers["abs_grad_input"]["min"]) <= {m for m, _ in suite.metrics}
    import tomllib

    eps = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["entry-points"]["xbench.explainers"]
    assert eps == {"abs_grad_input": "my_explainers:AbsGradInput"}
    wf = yaml.safe_load((ROOT / "examples" / "github-actions" / "xbench-gate.yml").read_text())
    steps = " ".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in wf["jobs"]["gate"]["steps"])
    for needle in ("download.pytorch.org/whl/cpu", "actions/cache", "xbench run", "xbench check --baseline",
                   "--junit xbench-junit.xml", "actions/upload-artifact"):
        assert needle in steps, needle
