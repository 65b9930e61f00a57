"""Never report stale results: a run directory is bound to its config, a failing run touches no other
run's files, and an explainer edited without a version bump is recomputed, not read from the cache."""
from __future__ import annotations

import hashlib
import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from helpers import LINEAR_TASK
from xbench.cli import main
from xbench.explainers.base import Explainer

ARGS = ["--no-progress", "--metrics", "comprehensiveness,sufficiency,token_f1"]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def task(tmp_path):
    p = tmp_path / "task.yaml"
    p.write_text(yaml.safe_dump(LINEAR_TASK))
    return p


def test_out_holding_another_run_is_refused_and_left_as_it_was(task, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(task), "--out", str(out), "--explainers", "occlusion", *ARGS]) == 0
    before = digest(out)
    capsys.readouterr()
    # another config into the same directory: refused, one line, nothing written
    assert main(["run", str(task), "--out", str(out), "--explainers", "saliency", *ARGS]) == 2
    err = capsys.readouterr().err
    assert f"{out}: holds a run (config" in err and "--overwrite" in err and err.count("\n") == 1
    # the same config again: refused too (it would report the old scores as new)
    assert main(["run", str(task), "--out", str(out), "--explainers", "occlusion", *ARGS]) == 2
    # a run that fails inside it (its data is missing) does not touch it either
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**LINEAR_TASK, "dataset": {"source": "path", "params": {
        "test": "nowhere.jsonl", "text": "t"}}}))
    assert main(["run", str(bad), "--out", str(out), *ARGS, "--overwrite"]) == 2
    assert digest(out) == before
    # --overwrite replaces it, and only once the new run is finished
    assert main(["run", str(task), "--out", str(out), "--explainers", "saliency", *ARGS, "--overwrite"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e for e, _ in manifest["config"]["explainers"]] == ["saliency"]
    assert not (tmp_path / ".run.new").exists() and not (tmp_path / ".run.old").exists()


def test_an_explainer_edited_without_a_version_bump_is_recomputed(tmp_path, monkeypatch, capsys):
    mod = tmp_path / "edited_explainer.py"
    src = textwrap.dedent('''
        import numpy as np
        from xbench.explainers.gradient import IntegratedGradients
        from xbench.core.seeding import np_rng

        class EditedIG(IntegratedGradients):
            """IG plus noise of scale NOISE (version never bumped)."""
            name = "edited_ig"
            params = {**IntegratedGradients.params, "n_steps": 8}

            def attribute(self, inputs, seed):
                s = super().attribute(inputs, seed)
                return s + NOISE * np_rng("edited", seed).standard_normal(s.shape)
        ''')
    mod.write_text("NOISE = 0.0\n" + src)
    monkeypatch.syspath_prepend(str(tmp_path))
    base, new = tmp_path / "base", tmp_path / "new"
    task = "synthetic-linear"  # 30 examples: enough for the paired test to see the change
    args = ["--explainers", "edited_explainer:EditedIG", "--no-progress", "--metrics", "comprehensiveness,sufficiency",
            "--n", "30"]
    assert main(["run", task, "--out", str(base), *args]) == 0
    fingerprint = Explainer.registry.get("edited_ig")().code_fingerprint()
    # the same code: the cache is used
    assert main(["run", task, "--out", str(tmp_path / "again"), *args]) == 0
    m = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert m["tasks"][task]["explainers"]["edited_ig"]["cache"] == "hit"
    # the module edited (much noisier), version not bumped: a cache miss, and the gate sees the change
    mod.write_text("NOISE = 3.0\n" + src)
    sys.modules.pop("edited_explainer", None)
    importlib.invalidate_caches()
    Explainer.registry._classes.pop("edited_ig", None)
    Explainer.registry._made.clear()
    assert main(["run", task, "--out", str(new), *args]) == 0
    assert Explainer.registry.get("edited_ig")().code_fingerprint() != fingerprint
    m = json.loads((new / "manifest.json").read_text())
    assert m["tasks"][task]["explainers"]["edited_ig"]["cache"] == "miss"
    capsys.readouterr()
    assert main(["check", "--baseline", str(base), str(new), "--min-effect", "0"]) == 1
    assert "regressed" in capsys.readouterr().out


def test_empty_name_lists_are_one_line(task, tmp_path, capsys):
    for flag in ("--explainers", "--metrics"):
        assert main(["run", str(task), "--out", str(tmp_path / "r"), flag, ","]) == 2
        err = capsys.readouterr().err
        assert ("name at least one explainer" in err or "name at least one metric" in err) and err.count("\n") == 1
        assert not (tmp_path / "r").exists()


def test_out_that_is_a_file_or_unwritable_is_one_line(task, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    for out in (afile, afile / "below"):
        assert main(["run", str(task), "--out", str(out), "--explainers", "occlusion", *ARGS]) == 2
        err = capsys.readouterr().err
        assert str(afile) in err and err.count("\n") == 1 and "Traceback" not in err
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if (ro / "probe").exists() or _writable(ro):
            pytest.skip("running as a user that may write into read-only folders (root)")
        assert main(["run", str(task), "--out", str(ro / "run"), "--explainers", "occlusion", *ARGS]) == 2
        assert str(ro) in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".w").write_text("x")
        (folder / ".w").unlink()
        return True
    except OSError:
        return False


def test_a_data_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_bytes(b'{"text": "caf\xe9 noir", "label": 1}\n')
    t = tmp_path / "t.yaml"
    t.write_text(yaml.safe_dump({**LINEAR_TASK, "dataset": {"source": "path", "params": {
        "test": "d.jsonl", "text": "text", "label": "label", "label_names": ["neg", "pos"]}}}))
    assert main(["run", str(t), "--out", str(tmp_path / "r"), "--explainers", "occlusion", *ARGS]) == 2
    err = capsys.readouterr().err
    assert f"{data}: not UTF-8 text (byte 0xe9 at offset 13" in err and err.count("\n") == 1


def test_two_explainer_classes_with_one_name_are_an_error_not_a_silent_swap(tmp_path, monkeypatch):
    from xbench.core.errors import XBenchError
    from xbench.run.config import build_config

    for mod in ("twin_a", "twin_b"):
        (tmp_path / f"{mod}.py").write_text(textwrap.dedent('''
            import numpy as np
            from xbench.explainers.base import Explainer

            class Twin(Explainer):
                def attribute(self, inputs, seed):
                    return np.zeros(inputs.example.n_features)
            '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    a = importlib.import_module("twin_a").Twin
    b = importlib.import_module("twin_b").Twin
    a.name = b.name = "twin"
    Explainer.registry._classes["twin"] = a
    try:
        with pytest.raises(XBenchError, match=r"explainer 'twin': two classes have this name \(twin_b.Twin and twin_a.Twin\)"):
            build_config([LINEAR_TASK], ["comprehensiveness"], [b])
        assert build_config([LINEAR_TASK], ["comprehensiveness"], [a]).explainers == [("twin", {})]
    finally:
        Explainer.registry._classes.pop("twin", None)
