"""Reproducing, resuming and merging runs from their manifests.

- ``xbench reproduce RUN_DIR``: re-run the manifest's config alone (attributions recomputed, not
  read from the cache) into a new directory, then compare the per-example scores.
- ``xbench run --resume RUN_DIR``: continue an interrupted run (see :class:`xbench.run.runner.Runner`).
- ``xbench run --shard K/N`` + ``xbench merge OUT SHARD...``: split a run's units over processes or
  machines and put the pieces together; the merged run equals the unsplit one.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbench.core.errors import XBenchError
from xbench.metrics.cost import measured_metrics
from xbench.results.leaderboard import read_scores
from xbench.results.rundir import RunDir
from xbench.run.config import RunConfig

#: metrics whose values measure the machine (wall-clock seconds, peak memory): never identical across
#: runs, so not compared
TIMED = tuple(measured_metrics())
KEY = ["task", "explainer", "metric", "example"]


def read_manifest(run_dir: Path) -> dict[str, Any]:
    return RunDir(run_dir).manifest()


def config_of(run_dir: Path) -> RunConfig:
    """The run's config from its manifest, with what it kept in ``inputs/`` made available again."""
    rd = RunDir(run_dir)
    restore_inputs(rd.path)
    return RunConfig.from_manifest(rd.manifest(), str(rd.manifest_path), rd.path)


def restore_inputs(run_dir: Path) -> None:
    """Put what a run kept under ``inputs/precomputed`` (precomputed attributions, by content hash)
    back into the cache, so it runs again on a machine that has never seen them."""
    from xbench.explainers.custom import copy_precomputed

    folder = Path(run_dir) / "inputs" / "precomputed"
    for f in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        copy_precomputed(f.stem, folder, into_cache=True)


def compare_scores(old: pd.DataFrame, new: pd.DataFrame, tolerance: float = 0.0) -> tuple[pd.DataFrame, dict]:
    """Per (task, explainer, metric): rows in each run, rows only in one, per-example values that
    differ at all (NaN equals NaN) and by more than ``tolerance`` (absolute), the largest absolute
    difference, and differing error strings. Wall-clock metrics (``TIMED``) are left out.
    Returns (one row per cell with any difference, totals)."""
    old = old[~old["metric"].isin(TIMED)]
    new = new[~new["metric"].isin(TIMED)]
    both = old.merge(new, on=KEY, how="outer", suffixes=("_a", "_b"), indicator=True)
    a, b = both["value_a"].to_numpy(float), both["value_b"].to_numpy(float)
    inner = (both["_merge"] == "both").to_numpy()
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(np.isnan(a) | np.isnan(b), np.where(same, 0.0, np.inf), np.abs(a - b))
    both["differs"] = inner & ~same
    both["beyond"] = inner & (diff > tolerance)
    both["abs_diff"] = np.where(inner, diff, np.nan)
    both["error_differs"] = inner & (both["error_a"].fillna("") != both["error_b"].fillna(""))
    both["only_a"] = both["_merge"] == "left_only"
    both["only_b"] = both["_merge"] == "right_only"
    cells = both.groupby(["task", "explainer", "metric"], sort=False).agg(
        n=("example", "size"), differ=("differs", "sum"), beyond=("beyond", "sum"), max_abs_diff=("abs_diff", "max"),
        error_differs=("error_differs", "sum"), only_original=("only_a", "sum"), only_new=("only_b", "sum"))
    bad = cells[(cells["differ"] > 0) | (cells["error_differs"] > 0) | (cells["only_original"] > 0)
                | (cells["only_new"] > 0)].reset_index()
    totals = {"compared": int(inner.sum()), "differ": int(both["differs"].sum()), "beyond": int(both["beyond"].sum()),
              "error_differs": int(both["error_differs"].sum()), "only_original": int(both["only_a"].sum()),
              "only_new": int(both["only_b"].sum()), "tolerance": tolerance, "left_out_metrics": list(TIMED)}
    totals["identical"] = totals["differ"] == totals["error_differs"] == totals["only_original"] == \
        totals["only_new"] == 0
    totals["within_tolerance"] = totals["beyond"] == totals["error_differs"] == totals["only_original"] == \
        totals["only_new"] == 0
    return bad, totals


def reproduce(run_dir: Path, out: Path, tolerance: float = 0.0, progress: bool = False,
              log: Any = None, runtime: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict]:
    """Re-run ``run_dir``'s config from its manifest into ``out`` (models from the content-addressed
    cache when their hash matches, attributions recomputed), then compare (see :func:`compare_scores`);
    the totals also say whether each task's model weights and data slice are the same. ``runtime``
    (device, threads, ...) overrides where it runs; the recorded dtype is kept unless overridden."""
    from xbench.run.runner import Runner

    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / "scores.csv").exists():
        raise XBenchError(f"{run_dir}: no scores.csv (is the run complete?)")
    m_old = read_manifest(run_dir)
    restore_inputs(run_dir)
    cfg = RunConfig.from_manifest(m_old, str(run_dir / "manifest.json"), run_dir)
    cfg.cache = False
    cfg.runtime.update(runtime or {})
    if out.resolve() == run_dir.resolve():
        raise XBenchError("--out must differ from the run directory being reproduced")
    Runner(cfg, out, progress=progress, log=log).run()
    bad, totals = compare_scores(read_scores(run_dir / "scores.csv"), read_scores(out / "scores.csv"), tolerance)
    m_new = read_manifest(out)
    totals["tasks"] = {
        t: {"weights_same": info.get("model_weights_sha256") == m_new["tasks"].get(t, {}).get("model_weights_sha256"),
            "data_same": info.get("fingerprint") == m_new["tasks"].get(t, {}).get("fingerprint")}
        for t, info in m_old.get("tasks", {}).items()}
    totals["versions_same"] = m_old.get("versions") == m_new.get("versions")
    totals["out"] = str(out)
    return bad, totals


def merge(out: Path, shards: list[Path], progress: bool = False) -> Path:
    """Put shard runs (``xbench run --shard K/N``, same config) together into ``out`` and finish it:
    per-unit files are copied, the manifests' task entries united, the run-level files built."""
    from xbench.run.runner import Runner

    if not shards:
        raise XBenchError("merge: name at least one shard directory")
    out = Path(out)
    manifests = [read_manifest(s) for s in shards]
    hashes = {m.get("config_hash") for m in manifests}
    if len(hashes) != 1:
        raise XBenchError(f"merge: the shards were run with different configs (config hashes {sorted(map(str, hashes))})")
    cfg = RunConfig.from_manifest(manifests[0], str(Path(shards[0]) / "manifest.json"), shards[0])
    if out.exists() and any(out.iterdir()):
        raise XBenchError(f"{out}: exists and is not empty")
    merged = {k: v for k, v in manifests[0].items() if k not in ("tasks", "shard", "status")}
    merged.update(tasks={}, shards=[m.get("shard") for m in manifests], merged_from=[str(s) for s in shards])
    for s, m in zip(shards, manifests):
        if m.get("status") not in ("shard-complete", "complete"):
            raise XBenchError(f"{s}: shard is not finished (status {m.get('status')!r}); resume it first")
        for task, info in m.get("tasks", {}).items():
            t = merged["tasks"].setdefault(task, {**info, "explainers": {}, "explainers_not_applicable": []})
            for k in ("fingerprint", "model_weights_sha256"):
                if t.get(k) != info.get(k):
                    raise XBenchError(f"merge: task {task}: field {k!r} differs between shards")
            t["explainers"].update(info.get("explainers", {}))
            t["explainers_not_applicable"] += [e for e in info.get("explainers_not_applicable", [])
                                               if e not in t["explainers_not_applicable"]]
        for sub in ("scores", "explanations", "curves", "examples", "parts"):
            src = Path(s) / sub
            if src.exists():
                shutil.copytree(src, out / sub, dirs_exist_ok=True)
    merged["wall_seconds"] = round(sum(float(m.get("wall_seconds") or 0) for m in manifests), 2)
    runner = Runner(cfg, out, progress=progress)
    for spec in cfg.tasks:  # a chunked task whose chunks ran in different shards is joined here
        if cfg.chunk is not None and not runner.task_done(merged, spec) and not runner.assemble(spec, merged):
            raise XBenchError(f"merge: task {spec.name}: some of its partitions are in none of the shards "
                              f"(parts/{spec.name}/); merge every shard of the run")
    return runner.finish(merged, merged["wall_seconds"])
