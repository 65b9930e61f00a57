"""The README is the front door: its two commands, and a row for every registered metric."""
from pathlib import Path

from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric

ROOT = Path(__file__).resolve().parent.parent


def builtin(base):
    """The classes xbench ships (tests register their own helpers too)."""
    return [c for c in base.registry if c.__module__.startswith("xbench.")]


def test_readme_gives_the_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text()
    assert "## Two commands" in readme
    assert "pip install -e . && xbench run" in readme
    assert 'pip install -e ".[test]" && pytest' in readme
    assert 'pip install -q -e ".[test]" && pytest' in (ROOT / ".ci" / "run").read_text()


def test_every_metric_and_explainer_is_documented():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## What is measured"):readme.index("## Explainers")]
    for m in builtin(Metric):
        assert f"| `{m.name}` | {m.family} |" in table, m.name
        assert ("↑ higher" if m.direction == "higher" else "↓ lower") in table.split(f"| `{m.name}` |")[1].split("\n")[0]
    explainers = readme[readme.index("## Explainers"):readme.index("## How it works")]
    for e in builtin(Explainer):
        assert f"| `{e.name}` | {e.family} |" in explainers, e.name


def test_readme_task_example_is_a_valid_task_file():
    import yaml

    from xbench.tasks.catalogue import parse_task

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Add a task"):readme.index("## Add an explainer")]
    block = section.split("```yaml\n")[1].split("```")[0]
    spec = parse_task(yaml.safe_load(block), "README.md")
    assert spec.dataset.source == "path" and spec.dataset.params["rationale_format"] == "spans"


def test_readme_lists_every_task_file():
    from xbench.tasks.catalogue import task_specs

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Tasks"):readme.index("## What is measured")]
    for name in task_specs():
        assert f"`{name}`" in table or name.startswith("breast-cancer"), name
