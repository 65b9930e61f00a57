"""Content-addressed caches: hits, per-class version invalidation, and corrupt entries recomputed."""
from __future__ import annotations

import json

import helpers  # noqa: F401  (registers the linear test model and dataset)
from helpers import LINEAR_TASK
from xbench.core.cache import cache_dir, model_dir_ok, sidecar, verify_sidecar
from xbench.explainers.base import Explainer
from xbench.results.leaderboard import read_scores
from xbench.run.config import RunConfig
from xbench.run.runner import Runner
from xbench.tasks.catalogue import parse_task

EXPLAINERS = [("saliency", {}), ("occlusion", {}), ("integrated_gradients", {"n_steps": 8})]
METRICS = [("comprehensiveness", {}), ("deletion_auc", {"steps": 4})]


def run(out, cache=True):
    cfg = RunConfig([parse_task(dict(LINEAR_TASK), "linear.yaml")], EXPLAINERS, METRICS, seed=0, cache=cache)
    Runner(cfg, out, progress=False, log=lambda m: None).run()
    m = json.loads((out / "manifest.json").read_text())["tasks"]["linear"]["explainers"]
    return {e: m[e]["cache"] for e in m}, read_scores(out / "scores.csv")


def entries(name):
    return sorted(cache_dir("attributions").glob(f"linear-{name}-*.npz"))


def test_attribution_cache_hits_versions_and_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / "cache"))  # only this test's entries
    first, s1 = run(tmp_path / "a")
    assert set(first.values()) == {"miss"}
    for name, _ in EXPLAINERS:
        (f,) = entries(name)
        assert verify_sidecar(f)
    second, s2 = run(tmp_path / "b")
    assert set(second.values()) == {"hit"} and s1.equals(s2)
    # a new version of one explainer class invalidates exactly its own entries
    monkeypatch.setattr(Explainer.registry.get("occlusion"), "version", 99)
    third, _ = run(tmp_path / "c")
    assert third == {"saliency": "hit", "occlusion": "miss", "integrated_gradients": "hit"}
    assert len(entries("occlusion")) == 2 and len(entries("saliency")) == 1
    # a truncated entry is detected by its hash and recomputed, never used
    (f,) = entries("saliency")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    assert not verify_sidecar(f)
    fourth, s4 = run(tmp_path / "d")
    assert fourth["saliency"] == "miss" and fourth["integrated_gradients"] == "hit"
    assert verify_sidecar(f) and s4.equals(s1)
    # flipped bytes, same size
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    assert run(tmp_path / "e")[0]["saliency"] == "miss"
    # an entry without its recorded hash (e.g. killed between the two writes) is not trusted either
    sidecar(f).unlink()
    assert run(tmp_path / "f")[0]["saliency"] == "miss"
    # --no-cache: nothing read, nothing written
    before = sorted(cache_dir("attributions").iterdir())
    assert set(run(tmp_path / "g", cache=False)[0].values()) == {"miss"}
    assert sorted(cache_dir("attributions").iterdir()) == before


def test_corrupt_model_cache_is_retrained_not_used(tmp_path, monkeypatch):
    from xbench.tasks.task import weights_hash
    from xbench.tasks.task import load_task

    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / "cache"))
    spec = parse_task({"name": "shapes-mini", "modality": "image", "replacement": "zero",
                       "dataset": {"source": "synthetic-shapes", "params": {"n_train": 256, "n_test": 16, "size": 16}},
                       "model": {"source": "train-cnn", "params": {"channels": [4, 8], "epochs": 1},
                                 "min_accuracy": 0.0}}, "shapes-mini.yaml")
    t1 = load_task(spec, n=2)
    folder = cache_dir("models")
    (path,) = [p for p in folder.iterdir() if p.name.startswith("shapes-mini-")]
    assert t1.info["model"]["cache"] == "miss" and model_dir_ok(path)
    assert load_task(spec, n=2).info["model"]["cache"] == "hit"
    w = path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])  # truncated
    assert not model_dir_ok(path)
    t3 = load_task(spec, n=2)
    assert t3.info["model"]["cache"] == "miss" and model_dir_ok(path)
    assert weights_hash(t3.model.model) == weights_hash(t1.model.model)  # retrained: the same weights
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "weights_sha256"}))
    assert not model_dir_ok(path)  # an entry from before hashes were recorded is retrained
    assert load_task(spec, n=2).info["model"]["cache"] == "miss"
