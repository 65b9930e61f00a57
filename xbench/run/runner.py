"""The runner: every (task, explainer, metric) combination, into a run directory.

A :class:`~xbench.run.config.WorkUnit` (one task, one explainer, a list of metrics) is plain data
and can be serialised and executed anywhere. Within a process, the units of one task share a model
and a :class:`~xbench.features.engine.PerturbationEngine`: all their metrics' perturbations are
evaluated in one deduplicated pass (:class:`xbench.metrics.scoring.Scoring`). The run directory's
layout is :class:`xbench.results.rundir.RunDir`'s.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xbench.core import progress as progress_bars
from xbench.core.cache import cache_dir, content_key, verify_sidecar, write_sidecar
from xbench.core.device import Runtime
from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer, Explanations
from xbench.metrics.base import BAD_ATTRIBUTIONS, Metric, is_skip
from xbench.metrics.scoring import MetricResult, Planned, Scoring
from xbench.report.tables import agreement_markdown
from xbench.results.agreement import agreement
from xbench.results.leaderboard import SCORE_COLUMNS, read_scores
from xbench.results.rundir import RunDir
from xbench.run.config import RunConfig, WorkUnit, git_commit, versions
from xbench.spec.task import TaskSpec
from xbench.tasks.catalogue import spec_from_dict
from xbench.tasks.task import Task, check_available, load_task, targets_for, weights_hash


def example_records(task: Task, targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """What a report's example viewer shows of each example, without the model: its features (tokens
    or words, pixel names, column names), gold rationale, label, target, prediction and confidence,
    and what the modality adds (:meth:`~xbench.features.protocol.Modality.view`: for images the
    channel-mean pixel values and the (H, W) grid, for tabular rows the values)."""
    spec = task.spec
    out: dict[str, Any] = {"task": spec.name, "modality": spec.modality, "granularity": spec.granularity,
                           "label_names": [str(n) for n in task.label_names], "examples": []}
    by_model = task.modality.view_model(task.examples, task.model, task.removal, targets)
    for i, ex in enumerate(task.examples):
        rec: dict[str, Any] = {
            "id": ex.id, "label": int(ex.label), "target": int(targets[i]), "pred": int(probs[i].argmax()),
            "confidence": float(probs[i].max()), "p_target": float(probs[i, targets[i]]),
            "features": [str(f) for f in ex.features],
            "rationale": None if ex.rationale is None else [int(v) for v in ex.rationale],
        }
        shared, own = task.modality.view(ex)
        out.update(shared)
        rec.update(own)
        rec.update(by_model[i])
        if getattr(ex, "truth", None) is not None:
            rec["truth"] = [float(v) for v in ex.truth]
        out["examples"].append(rec)
    return out


def curves_arrays(task: Task, results: list[MetricResult]) -> dict[str, np.ndarray]:
    """Each curve metric's per-example curves as one (n, L) array, NaN where unscored or shorter."""
    arrays = {}
    for r in results:
        if not r.curves:
            continue
        width = max(len(c) for c in r.curves.values())
        a = np.full((len(task.examples), width), np.nan)
        for i, c in r.curves.items():
            a[i, :len(c)] = c
        arrays[r.name] = a
    return arrays


class Runner:
    """Runs a :class:`RunConfig` into a run directory, one work unit (task x explainer) at a time.

    Each finished unit is on disk before the next starts: its attributions, curves, its manifest
    entry and, last, its scores file ``scores/<task>/<explainer>.csv`` (every write atomic), so a
    scores file marks a complete unit. ``resume=True`` continues a run directory whose manifest has
    the same config hash, running only the units without a scores file; ``shard=(k, n)`` runs only
    units k-1, k-1+n, ... (in config order) and leaves the finishing to ``xbench merge``. The
    run-level files (scores.csv, leaderboards, agreement) are always built from the per-unit files
    in config order, so a fresh, a resumed and a merged run write the same bytes.
    """

    def __init__(self, config: RunConfig, out: Path, progress: bool = True, log: Any = None,
                 resume: bool = False, shard: tuple[int, int] | None = None,
                 models: dict[str, tuple[Any, Any, dict]] | None = None, overwrite: bool = False) -> None:
        self.config, self.out, self.progress = config, Path(out), progress
        self.dir = RunDir(self.out)
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.resume, self.shard, self.overwrite = resume, shard, overwrite
        if shard is not None and not (1 <= shard[0] <= shard[1]):
            raise XBenchError(f"--shard {shard[0]}/{shard[1]}: need 1 <= K <= N")
        self.failures: list[str] = []
        self._seen: set[Any] = set()
        self._unit_failures: list[tuple[Any, str]] = []
        self.runtime: Runtime | None = None
        #: live models by task name, ``(model, tokenizer, info)``, used instead of the task's model source
        #: (the Python API's); the spec still says how to load the model again (reproduce)
        self.models = dict(models or {})

    def explain(self, task: Task, explainer: Explainer, targets: np.ndarray, model_hash: str,
                seed: int) -> Explanations:
        """Attributions, from the on-disk cache when the same (task, explainer, params, seed) ran before.
        The key holds every input of the computation: the task, its data slice, the model weights, the
        explainer's name, version, parameters and code (:meth:`Explainer.code_fingerprint`), the seed
        and the targets. A cache entry whose sha256 does not match the one recorded beside it is
        recomputed."""
        key = content_key({"task": task.spec.to_dict(), "data": task.fingerprint(), "model": model_hash,
                           "explainer": explainer.name, "version": explainer.version, "params": explainer.p,
                           "code": explainer.code_fingerprint(), "seed": seed, "targets": targets.tolist(),
                           **({"dtype": self.runtime.dtype} if self.runtime and self.runtime.dtype else {})})
        path = cache_dir("attributions", f"{task.name}-{explainer.name}-{key}.npz")
        meta = {"conventions": explainer.conventions(task), "cache_key": key}
        if self.config.cache and path.exists():
            if verify_sidecar(path):
                try:
                    return Explanations.load(path, explainer.name, explainer.p, meta)
                except (OSError, ValueError, KeyError):
                    pass
            self.log(f"xbench: note: attribution cache entry {path.name} is corrupt or incomplete; recomputing")
        expl = explainer.explain(task, task.examples, targets.tolist(), seed, self.progress)
        expl.meta.update(cache_key=key, cache="miss")
        if self.config.cache:
            expl.save(path)
            write_sidecar(path)
        return expl

    # ------------------------------------------------------------------ the run

    def unit_path(self, kind: str, task: str, explainer: str) -> Path:
        return self.dir.unit(kind, task, explainer)

    def my_units(self) -> list[WorkUnit]:
        units = self.config.units()
        if self.shard is None:
            return units
        k, n = self.shard
        return [u for i, u in enumerate(units) if i % n == k - 1]

    def _start_manifest(self) -> dict[str, Any]:
        cfg, out, rd = self.config, self.out, self.dir
        if self.resume:
            if not rd.exists():
                raise XBenchError(f"{out}: not a run directory (no manifest.json); nothing to resume")
            manifest = rd.manifest()
            if manifest.get("config_hash") != cfg.hash():
                raise XBenchError(f"{rd.manifest_path}: field 'config_hash' is {manifest.get('config_hash')!r}, not "
                                  f"this config's {cfg.hash()!r}; resume continues a run with the same config only")
            rd.remove_partial_writes()
            manifest.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            manifest.update(status="running", versions=versions(), git_commit=git_commit())
            return manifest
        import torch

        return {
            "xbench_run": 1, "status": "running", "config": cfg.to_dict(), "config_hash": cfg.hash(),
            "seeds": {"run": cfg.seed}, "shard": None if self.shard is None else list(self.shard),
            "plugins": cfg.plugins(),
            "versions": versions(), "git_commit": git_commit(),
            "hardware": {"machine": platform.machine(), "processor": platform.processor(),
                         "system": platform.system(), "cpus": os.cpu_count(),
                         "torch_threads": torch.get_num_threads()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tasks": {},
        }

    def done(self, manifest: dict[str, Any], unit: WorkUnit, task: str) -> bool:
        """A unit is done when its scores file exists, or the task found its explainer not applicable."""
        na = manifest.get("tasks", {}).get(task, {}).get("explainers_not_applicable", [])
        return unit.explainer in na or self.unit_path("scores", task, unit.explainer).exists()

    def _claim(self) -> Path | None:
        """Refuse a run directory that holds another run (of any config: its results would be mixed
        with this one's or reported as this one's); with ``overwrite``, run beside it instead and
        return where to swap the finished run in."""
        if self.resume or not self.dir.exists():
            return None
        old = self.dir.manifest(required=False)
        what = (f"{self.out}: holds a run (config {old.get('config_hash')}, status {old.get('status')}; this "
                f"config is {self.config.hash()})")
        if not self.overwrite:
            hint = f"continue it with `xbench run --resume {self.out}`, " if old.get("status") != "complete" else ""
            raise XBenchError(f"{what}; {hint}choose another --out, or replace it with --overwrite")
        final = self.out
        self.out = final.parent / f".{final.name}.new"
        shutil.rmtree(self.out, ignore_errors=True)
        self.dir = RunDir(self.out)
        return final

    def run(self) -> Path:
        cfg = self.config
        # before anything is written: a task that cannot run here leaves no run dir
        check_available(cfg.tasks, live_models=set(self.models))
        self.runtime = self.runtime or Runtime.create(**cfg.runtime)
        final = self._claim()
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        t_start = time.time()
        manifest = self._start_manifest()
        manifest["hardware"]["torch_threads"] = self.runtime.threads
        manifest["runtime"] = self.runtime.describe()
        self.dir.write_manifest(manifest)
        units = self.my_units()

        def save() -> None:
            manifest["runtime"] = self.runtime.describe()
            self.dir.write_manifest(manifest)

        with progress_bars.switched(self.progress):
            for spec in cfg.tasks:
                mine = [u for u in units if u.task == spec.to_dict() and not self.done(manifest, u, spec.name)]
                if mine:
                    self.run_units(mine, manifest["tasks"], spec, on_unit=save)
                save()
        seconds = round(time.time() - t_start, 2)  # this process's time (a resumed run: since the resume)
        if self.shard is not None:
            manifest.update(status="shard-complete", wall_seconds=seconds)
            self.dir.write_manifest(manifest)
        else:
            self.finish(manifest, seconds)
        if final is not None:  # --overwrite: the old run is replaced only now, by a finished one
            old = final.parent / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            out.rename(final)
            shutil.rmtree(old, ignore_errors=True)
            self.out, self.dir = final, RunDir(final)
        return self.out

    def finish(self, manifest: dict[str, Any], wall_seconds: float | None = None) -> Path:
        """Build the run-level files from the per-unit files, in config order; mark the run complete."""
        from xbench.report.tables import write_leaderboard

        out, rd = self.out, self.dir
        frames, agree, failures = [], [], []
        for spec in self.config.tasks:
            tinfo = manifest["tasks"].get(spec.name, {})
            na = set(tinfo.get("explainers_not_applicable", []))
            attributions = {}
            for name, _ in self.config.explainers:
                if name in na:
                    continue
                f = self.unit_path("scores", spec.name, name)
                if not f.exists():
                    raise XBenchError(f"{out}: unit ({spec.name}, {name}) has no scores file; the run is incomplete "
                                      f"(continue it with `xbench run --resume {out}`)")
                frames.append(read_scores(f))
                failures += [tuple(x) for x in tinfo.get("explainers", {}).get(name, {}).get("failures", [])]
                ex = Explanations.load(self.unit_path("explanations", spec.name, name), name, {}, {})
                attributions[name] = ex.attributions
            failures += [tuple(x) for x in tinfo.get("failures", [])]
            if attributions:
                agree.append(agreement(spec.name, attributions))
        seen, self.failures = set(), []
        for once, msg in failures:  # the same problem reported once per run, in config order
            key = tuple(once) if isinstance(once, list) else once
            if key is not None and key in seen:
                continue
            seen.add(key)
            self.failures.append(msg)
        scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)
        rd.write("scores.csv", lambda f: scores.to_csv(f, index=False))
        with progress_bars.switched(self.progress):
            write_leaderboard(out, scores, manifest)
        if agree:
            a = pd.concat(agree, ignore_index=True)
            rd.write_json("agreement.json", json.loads(a.to_json(orient="records")))
            rd.write_text("agreement.md", agreement_markdown(a))
        manifest.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), failures=self.failures)
        if wall_seconds is not None:
            manifest["wall_seconds"] = wall_seconds
        rd.write_manifest(manifest)
        return out

    def run_units(self, units: list[WorkUnit], info: dict[str, Any], spec: TaskSpec | None = None,
                  on_unit: Any = None) -> pd.DataFrame:
        """Execute work units of one task, sharing its model and perturbation engine.

        A single unit, e.g. one rebuilt with ``WorkUnit.from_dict`` on another machine, runs the same
        way and gives the same per-example scores as it does among all the others.
        """
        if len({json.dumps(u.task, sort_keys=True) for u in units}) != 1 or len({(u.n, u.seed) for u in units}) != 1:
            raise ValueError("run_units takes units of one task, with one n and one seed")
        spec = spec or spec_from_dict(units[0].task)
        n, seed = units[0].n, units[0].seed
        self.runtime = self.runtime or Runtime.create(**self.config.runtime)
        t0 = time.perf_counter()
        task = load_task(spec, n, self.runtime, self.models.get(spec.name))
        engine = task.engine()
        f0 = task.model.n_forward
        targets, pred, probs = targets_for(task, engine)
        targets_passes = task.model.n_forward - f0
        model_hash = weights_hash(task.model.model)
        acc = float(np.mean(pred == np.array([ex.label for ex in task.examples])))
        before = info.get(spec.name, {})  # a resumed task keeps its finished units' entries
        tinfo = info[spec.name] = {
            "spec_path": spec.path, "n_examples": len(task.examples), "fingerprint": task.fingerprint(),
            "model_weights_sha256": model_hash, "model": task.info["model"], "accuracy_on_slice": acc,
            "load_seconds": task.info["load_seconds"],
            "replacement": task.removal.name, "granularity": spec.granularity, "target": spec.target,
            "removal": task.removal.describe(), "explained": task.target.describe(),
            "explainers": dict(before.get("explainers", {})), "n_truncated": sum(ex.truncated for ex in task.examples),
        }
        if before and before.get("fingerprint") != tinfo["fingerprint"]:
            raise XBenchError(f"task {spec.name}: the data slice changed since the run started (fingerprint "
                              f"{before.get('fingerprint')} -> {tinfo['fingerprint']}); start a new run")
        if before and before.get("model_weights_sha256") != model_hash:
            raise XBenchError(f"task {spec.name}: the model weights changed since the run started; start a new run")
        # phase 1: explain, then let every metric submit its perturbations
        scoring = Scoring(task, targets, engine, seed)
        planned: list[tuple[Explainer, Planned]] = []
        tinfo["explainers_not_applicable"] = list(before.get("explainers_not_applicable", []))
        for unit in units:
            explainer = Explainer.registry.get(unit.explainer)(**unit.explainer_params)
            if not explainer.applies_to(task):
                if explainer.name not in tinfo["explainers_not_applicable"]:
                    tinfo["explainers_not_applicable"].append(explainer.name)
                continue
            metrics = [Metric.registry.get(n)(**p) for n, p in unit.metrics]
            expl = self.explain(task, explainer, targets, model_hash, seed)
            plan = scoring.plan(expl, metrics, explainer)
            self._report_bad(spec, explainer.name, plan)
            planned.append((explainer, plan))
            tinfo["explainers"][explainer.name] = {"params": expl.params, **expl.meta,
                                                   "metrics_not_applicable": plan.not_applicable,
                                                   "failures": self._take_failures()}
        # phase 2: one deduplicated, length-sorted pass over every requested input
        shared = scoring.run(self.progress)
        tinfo["engine"] = {"shared_pass": {"requested": engine.n_requested, "unique": engine.n_unique,
                                           "forward_passes": shared["forward_passes"] + targets_passes,
                                           "seconds": shared["seconds"]}}
        # phase 3: score and write each unit atomically, its scores file last (it marks the unit done)
        self.dir.write_json(f"examples/{spec.name}.json", example_records(task, targets, probs))
        frames = []
        for explainer, plan in planned:
            rows = []
            for r in scoring.score(plan, self.progress):
                if r.notes:
                    tinfo["explainers"][explainer.name].setdefault("metric_notes", {})[r.name] = r.notes
                for i, ex in enumerate(task.examples):
                    rows.append((spec.name, explainer.name, r.name, ex.id, r.values[i], r.errors[i] or "",
                                 task.removal.name, int(targets[i]), seed))
                # NaN attributions and the explainer's own failures are reported once per explainer
                per_explainer = {BAD_ATTRIBUTIONS, *filter(None, plan.explanations.errors)}
                bad = [e for e in r.errors if e and e not in per_explainer and not is_skip(e)]
                if bad:
                    first = task.examples[r.errors.index(bad[0])].id
                    self._fail(f"{spec.path}: example {first}: {bad[0]} ({len(bad)} example(s); counted in "
                               f"n_failed of {r.name})", once=(spec.name, bad[0]))
            entry = tinfo["explainers"][explainer.name]
            entry["metric_cost"] = {r.name: r.cost for r in plan.results}
            entry["failures"] = entry.get("failures", []) + self._take_failures()
            df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
            plan.explanations.save(self.unit_path("explanations", spec.name, explainer.name))
            curves = curves_arrays(task, plan.results)
            if curves:
                self.dir.write(f"curves/{spec.name}/{explainer.name}.npz",
                               lambda f: np.savez(f, ids=np.array([ex.id for ex in task.examples], dtype=str),
                                                  **curves), mode="wb")
            if on_unit is not None:
                on_unit()  # the manifest, with this unit's entry, before its scores file
            self.dir.write(f"scores/{spec.name}/{explainer.name}.csv", lambda f: df.to_csv(f, index=False))
            frames.append(df)
        # metrics that search (normalised AOPC bounds) or sample (infidelity) add inputs while scoring
        tinfo["engine"].update(requested=engine.n_requested, unique=engine.n_unique)
        tinfo["seconds"] = round(time.perf_counter() - t0, 2)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)

    def _report_bad(self, spec: TaskSpec, name: str, plan: Planned) -> None:
        ctx, errors = plan.context, plan.explanations.errors
        failed = [i for i, e in enumerate(errors) if e]
        if failed:
            self._fail(f"explainer {name} on task {spec.name}: failed on {len(failed)} example(s), first "
                       f"{ctx.task.examples[failed[0]].id}: {errors[failed[0]]}; counted in n_failed")
        bad = [i for i in np.flatnonzero(~ctx.valid) if not errors[i]]
        if len(bad):
            self._fail(f"explainer {name} on task {spec.name}: NaN or infinite attributions for {len(bad)} "
                       f"example(s), first {ctx.task.examples[bad[0]].id}; counted in n_failed")

    def _fail(self, msg: str, once: Any = None) -> None:
        """Report a problem now (once per ``once`` key) and keep it with the current unit's manifest
        entry, so a resumed or merged run lists the same problems."""
        self._unit_failures.append((list(once) if isinstance(once, tuple) else once, msg))
        if once is not None:
            if once in self._seen:
                return
            self._seen.add(once)
        self.failures.append(msg)
        self.log(f"xbench: warning: {msg}")

    def _take_failures(self) -> list[tuple[Any, str]]:
        out, self._unit_failures = self._unit_failures, []
        return out


def default_out(suite: str) -> Path:
    return Path("runs") / f"{suite}-{time.strftime('%Y%m%d-%H%M%S')}"
