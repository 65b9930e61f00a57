"""The package's layers (``[tool.importlinter]`` in pyproject.toml): a module imports only from the
layers below its own, and no two sibling modules or packages import each other in a circle. Both
contracts are checked with import-linter, on the package and on a copy with a planted upward import
(so the check is shown to fail when it should)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    return subprocess.run([str(exe), "--config", str(cwd / "pyproject.toml")], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_layers_and_no_cycles():
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 kept, 0 broken" in r.stdout


@pytest.mark.parametrize("where,line,broken", [
    ("xbench/core/errors.py", "import xbench.metrics.base  # noqa", "layers"),   # upward
    ("xbench/features/text.py", "import xbench.features.engine  # noqa", "cycles"),   # a circle between siblings
])
def test_a_planted_violation_breaks_the_contract(tmp_path, where, line, broken):
    shutil.copytree(ROOT / "xbench", tmp_path / "xbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    if broken == "cycles":  # engine -> text already exists? make both directions explicit
        (tmp_path / "xbench/features/engine.py").write_text(
            (tmp_path / "xbench/features/engine.py").read_text() + "\nimport xbench.features.text  # noqa\n")
    f = tmp_path / where
    f.write_text(f.read_text() + f"\n{line}\n")
    r = lint_imports(tmp_path)
    assert r.returncode != 0
    assert ("layers:" if broken == "layers" else "no import cycles") in r.stdout
    assert "BROKEN" in r.stdout
