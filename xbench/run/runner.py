"""The runner: every (task, explainer, metric) combination, into a run directory.

A :class:`~xbench.run.config.WorkUnit` (one task, one explainer, a list of metrics) is plain data
and can be serialised and executed anywhere. Within a process, the units of one task share a model
and a :class:`~xbench.features.engine.PerturbationEngine`: all their metrics' perturbations are
evaluated in one deduplicated pass (:class:`xbench.metrics.scoring.Scoring`). The run directory's
layout is :class:`xbench.results.rundir.RunDir`'s.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator

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
from xbench.run.config import Partition, RunConfig, WorkUnit, git_commit, versions
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


@dataclasses.dataclass
class UnitResult:
    """One explainer's results on one partition: per-example scores, attributions, curves."""

    explainer: str
    scores: pd.DataFrame
    explanations: Explanations
    curves: dict[str, np.ndarray]


@dataclasses.dataclass
class PartResult:
    """What computing a partition gives (:meth:`Runner.compute`): plain data, moved between
    processes as it is (a Ray object) and written by :meth:`Runner.write_part`."""

    partition: Partition
    tinfo: dict[str, Any]
    units: list[UnitResult]
    examples: dict[str, Any]
    messages: list[tuple[Any, str]]
    n_correct: int
    n: int
    worker: dict[str, Any]


def _join_costs(costs: list[dict[str, Any]], ns: list[int]) -> dict[str, Any]:
    """Metric costs of one metric over chunks: per-example figures weighted by the chunks' sizes,
    counts summed."""
    out = dict(costs[0])
    total = max(1, sum(ns))
    for k, v in costs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [c.get(k, 0) or 0 for c in costs]
            out[k] = (sum(v * n for v, n in zip(vals, ns)) / total if k.endswith("_per_example") else sum(vals))
    return out


def join_entries(entries: list[dict[str, Any]], chunk: int | None) -> dict[str, Any]:
    """One task's manifest entry from its chunks' (``parts/<task>/<k>/entry.json``): the slice-level
    fields (identical in every chunk) once, accuracy over all examples, engine counts and seconds
    summed, each explainer's failures and cache keys in chunk order, its metric costs joined."""
    first = entries[0]["tinfo"]
    ns = [int(e["n"]) for e in entries]
    out = {k: v for k, v in first.items() if k not in ("explainers", "engine", "seconds")}
    out["accuracy_on_slice"] = sum(int(e["n_correct"]) for e in entries) / max(1, sum(ns))
    out["explainers_not_applicable"] = list(dict.fromkeys(x for e in entries
                                                          for x in e["tinfo"]["explainers_not_applicable"]))
    out["explainers"] = {}
    for name in first["explainers"]:
        chunks = [e["tinfo"]["explainers"][name] for e in entries]
        m = dict(chunks[0])
        m["cache_key"] = [c.get("cache_key") for c in chunks]
        m["cache"] = "hit" if all(c.get("cache") == "hit" for c in chunks) else "miss"
        m["failures"] = [f for c in chunks for f in c.get("failures", [])]
        m["metrics_not_applicable"] = list(dict.fromkeys(x for c in chunks for x in c.get("metrics_not_applicable", [])))
        notes: dict[str, Any] = {}
        for c in chunks:
            for k, v in (c.get("metric_notes") or {}).items():
                notes.setdefault(k, v)
        if notes:
            m["metric_notes"] = notes
        m["metric_cost"] = {k: _join_costs([c["metric_cost"][k] for c in chunks], ns)
                            for k in chunks[0].get("metric_cost", {})}
        out["explainers"][name] = m
    shared = [e["tinfo"]["engine"]["shared_pass"] for e in entries]
    out["engine"] = {"shared_pass": {k: (round(sum(s[k] for s in shared), 4) if k == "seconds" else
                                         sum(s[k] for s in shared)) for k in shared[0]},
                     "requested": sum(e["tinfo"]["engine"]["requested"] for e in entries),
                     "unique": sum(e["tinfo"]["engine"]["unique"] for e in entries)}
    out["seconds"] = round(sum(e["tinfo"]["seconds"] for e in entries), 2)
    out["partitions"] = {"chunk": chunk, "count": len(entries), "workers": [e["worker"] for e in entries]}
    return out


class LocalBackend:
    """Every partition in this process, one after another (the default)."""

    name = "local"

    def describe(self, before: dict | None = None) -> dict[str, Any]:
        return {"name": "local"}

    def check(self) -> None:
        pass

    def count(self, runner: "Runner", spec: TaskSpec) -> int:
        return len(runner.load(spec)[0].examples)

    def execute(self, runner: "Runner", todo: list) -> Iterator["PartResult"]:
        for part, units, before in todo:
            yield runner.compute(part, units, before, runner._spec(part.task))

    def close(self) -> None:
        pass


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
                 models: dict[str, tuple[Any, Any, dict]] | None = None, overwrite: bool = False,
                 backend: Any = None) -> None:
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
        #: where partitions run (:class:`LocalBackend`, or :mod:`xbench.run.backends`' Ray backend)
        self.backend = backend
        self._tasks: dict[str, tuple[Task, str]] = {}
        self._messages: list[tuple[Any, str]] = []

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

    def task_done(self, manifest: dict[str, Any], spec: TaskSpec) -> bool:
        return all(self.done(manifest, u, spec.name) for u in self.units_of(spec))

    def units_of(self, spec: TaskSpec) -> list[WorkUnit]:
        d = spec.to_dict()
        return [u for u in self.config.units() if u.task == d]

    def plan(self, manifest: dict[str, Any]) -> list[tuple[Partition, list[WorkUnit], dict | None]]:
        """What is left to compute in this process's share of the run: ``(partition, units, the
        task's manifest entry so far)``. The partition (:meth:`RunConfig.partitions`) is the same
        for every backend; ``shard=(k, n)`` takes partitions k-1, k-1+n, ... of it (in config
        order), so a shard and a worker compute a partition the same way."""
        cfg, specs = self.config, {t.name: t for t in self.config.tasks}
        counts: dict[str, int] = {}
        if cfg.chunk is not None:
            for t in cfg.tasks:
                known = manifest["tasks"].get(t.name, {}).get("n_examples")
                counts[t.name] = int(known) if known is not None else self._backend().count(self, t)
        parts = cfg.partitions(counts)
        if self.shard is not None:
            k, n = self.shard
            if n > len(parts):
                raise XBenchError(f"--shard {k}/{n}: the run has {len(parts)} partition(s) (one per task"
                                  f"{'' if cfg.chunk is None else f', in chunks of {cfg.chunk} examples'}); "
                                  f"use at most {len(parts)} shards, or split tasks with --chunk N")
            parts = [p for i, p in enumerate(parts) if i % n == k - 1]
        todo = []
        for p in parts:
            spec = specs[p.task]
            if not p.chunked:
                units = [u for u in self.units_of(spec) if not self.done(manifest, u, spec.name)]
                if units:
                    todo.append((p, units, manifest["tasks"].get(spec.name)))
            elif not self.task_done(manifest, spec) and not self.part_done(p):
                todo.append((p, self.units_of(spec), None))
        return todo

    def _backend(self) -> Any:
        if self.backend is None:
            self.backend = LocalBackend()
        return self.backend

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
        backend = self._backend()
        backend.check()
        if self.shard is not None and cfg.chunk is None and self.shard[1] > len(cfg.tasks):
            self.plan({"tasks": {}})  # the one-line error, before anything is written
        self.runtime = self.runtime or Runtime.create(**cfg.runtime)
        final = self._claim()
        out = self.out
        out.mkdir(parents=True, exist_ok=True)
        t_start = time.time()
        manifest = self._start_manifest()
        manifest["hardware"]["torch_threads"] = self.runtime.threads
        manifest["runtime"] = self.runtime.describe()
        self.dir.write_manifest(manifest)

        def save() -> None:
            manifest["runtime"] = self.runtime.describe()
            manifest["backend"] = backend.describe(manifest.get("backend"))
            self.dir.write_manifest(manifest)

        try:
            with progress_bars.switched(self.progress):
                todo = self.plan(manifest)
                save()
                for res in backend.execute(self, todo):
                    self.write_part(res, manifest, save)
                    if res.partition.chunked:
                        self.assemble(self._spec(res.partition.task), manifest, save)
                    save()
                for spec in cfg.tasks:  # chunks all done before (a resumed or merged run)
                    if cfg.chunk is not None and not self.task_done(manifest, spec):
                        self.assemble(spec, manifest, save)
                save()
        except BaseException:
            save()  # what finished so far, and the backend's retries, before the error goes up
            raise
        finally:
            backend.close()
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

    def _spec(self, name: str) -> TaskSpec:
        return next(t for t in self.config.tasks if t.name == name)

    def finish(self, manifest: dict[str, Any], wall_seconds: float | None = None) -> Path:
        """Build the run-level files from the per-unit files, in config order; mark the run complete."""
        from xbench.report.tables import write_leaderboard

        out, rd = self.out, self.dir
        order = [t.name for t in self.config.tasks]  # partitions finish in any order; the manifest lists config order
        manifest["tasks"] = dict(sorted(manifest.get("tasks", {}).items(),
                                        key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
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

    # ------------------------------------------------------------------ partitions

    def load(self, spec: TaskSpec) -> tuple[Task, str]:
        """The task (model, data) and its weights hash, loaded once per process and kept: every
        partition of the task that runs here shares it (a Ray worker keeps its tasks the same way)."""
        key = json.dumps(spec.to_dict(), sort_keys=True)
        got = self._tasks.get(key)
        if got is None:
            self.runtime = self.runtime or Runtime.create(**self.config.runtime)
            task = load_task(spec, self.config.n, self.runtime, self.models.get(spec.name))
            got = self._tasks[key] = (task, weights_hash(task.model.model))
        return got

    def compute(self, part: Partition, units: list[WorkUnit], before: dict[str, Any] | None = None,
                spec: TaskSpec | None = None) -> PartResult:
        """Explain and score one partition: its examples, every unit (explainer) given, one shared
        perturbation engine. Writes nothing but the attribution cache; the result is plain data
        (:class:`PartResult`) that :meth:`write_part` writes, here or on the machine that asked."""
        if len({json.dumps(u.task, sort_keys=True) for u in units}) != 1 or len({(u.n, u.seed) for u in units}) != 1:
            raise ValueError("compute takes units of one task, with one n and one seed")
        spec = spec or spec_from_dict(units[0].task)
        seed = units[0].seed
        t0 = time.perf_counter()
        whole, model_hash = self.load(spec)
        task = whole if not part.chunked else dataclasses.replace(whole, examples=whole.examples[part.lo:part.hi])
        engine = task.engine()
        f0 = task.model.n_forward
        targets, pred, probs = targets_for(task, engine)
        targets_passes = task.model.n_forward - f0
        n_correct = int(np.sum(pred == np.array([ex.label for ex in task.examples])))
        before = before or {}  # a resumed task keeps its finished units' entries
        tinfo = {
            "spec_path": spec.path, "n_examples": len(whole.examples), "fingerprint": whole.fingerprint(),
            "model_weights_sha256": model_hash, "model": whole.info["model"],
            "accuracy_on_slice": n_correct / max(1, len(task.examples)),
            "load_seconds": whole.info["load_seconds"],
            "replacement": task.removal.name, "granularity": spec.granularity, "target": spec.target,
            "removal": task.removal.describe(), "explained": task.target.describe(),
            "explainers": dict(before.get("explainers", {})), "n_truncated": sum(ex.truncated for ex in whole.examples),
        }
        if before and before.get("fingerprint") != tinfo["fingerprint"]:
            raise XBenchError(f"task {spec.name}: the data slice changed since the run started (fingerprint "
                              f"{before.get('fingerprint')} -> {tinfo['fingerprint']}); start a new run")
        if before and before.get("model_weights_sha256") != model_hash:
            raise XBenchError(f"task {spec.name}: the model weights changed since the run started; start a new run")
        self._messages = []
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
        # phase 3: score each unit
        results = []
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
            results.append(UnitResult(explainer.name, pd.DataFrame(rows, columns=SCORE_COLUMNS), plan.explanations,
                                      curves_arrays(task, plan.results)))
        # metrics that search (normalised AOPC bounds) or sample (infidelity) add inputs while scoring
        tinfo["engine"].update(requested=engine.n_requested, unique=engine.n_unique)
        tinfo["seconds"] = round(time.perf_counter() - t0, 2)
        return PartResult(part, tinfo, results, example_records(task, targets, probs), self._messages,
                          n_correct, len(task.examples),
                          {"host": platform.node(), "pid": os.getpid(), "seconds": tinfo["seconds"]})

    def part_dir(self, part: Partition) -> str:
        return f"parts/{part.task}/{part.index}"

    def part_done(self, part: Partition) -> bool:
        return (self.dir / self.part_dir(part) / "entry.json").exists()

    def write_part(self, res: PartResult, manifest: dict[str, Any], save: Any = None) -> None:
        """Write a partition's results. A whole task: its unit files (explanations, curves, then the
        manifest with the unit's entry, then the scores file last: it marks the unit done). A chunk:
        the same files under ``parts/<task>/<k>/``, its manifest entry ``entry.json`` last (it marks
        the chunk done); :meth:`assemble` joins a task's chunks when all are there."""
        part, name = res.partition, res.partition.task
        for once, msg in res.messages:
            self._log_failure(once, msg)
        if not part.chunked:
            manifest["tasks"][name] = res.tinfo
            self.dir.write_json(f"examples/{name}.json", res.examples)
            self._write_units(name, res.units, save)
            return
        base = self.part_dir(part)
        for u in res.units:
            u.explanations.save(self.dir / base / "explanations" / f"{u.explainer}.npz")
            if u.curves:
                self._write_curves(f"{base}/curves/{u.explainer}.npz", u.explanations.example_ids, u.curves)
            self.dir.write(f"{base}/scores/{u.explainer}.csv", lambda f, u=u: u.scores.to_csv(f, index=False))
        self.dir.write_json(f"{base}/examples.json", res.examples)
        self.dir.write_json(f"{base}/entry.json", {"partition": part.to_dict(), "tinfo": res.tinfo,
                                                   "n_correct": res.n_correct, "n": res.n, "worker": res.worker,
                                                   "explainers": [u.explainer for u in res.units]})

    def _write_curves(self, name: str, ids: list[str], curves: dict[str, np.ndarray]) -> None:
        self.dir.write(name, lambda f: np.savez(f, ids=np.array(ids, dtype=str), **curves), mode="wb")

    def _write_units(self, task: str, units: list[UnitResult], save: Any = None) -> None:
        for u in units:
            u.explanations.save(self.unit_path("explanations", task, u.explainer))
            if u.curves:
                self._write_curves(f"curves/{task}/{u.explainer}.npz", u.explanations.example_ids, u.curves)
            if save is not None:
                save()  # the manifest, with this unit's entry, before its scores file
            self.dir.write(f"scores/{task}/{u.explainer}.csv", lambda f, u=u: u.scores.to_csv(f, index=False))

    def assemble(self, spec: TaskSpec, manifest: dict[str, Any], save: Any = None) -> bool:
        """Join a chunked task's partitions into its unit files (scores, explanations, curves and
        examples in example order) and one manifest entry, once every chunk is done; then remove
        ``parts/<task>``. Returns whether the task is complete."""
        found = sorted((self.dir / "parts" / spec.name).glob("*/entry.json"))
        if not found:
            return False
        total = json.loads(found[0].read_text())["tinfo"]["n_examples"]
        parts = self.config.task_partitions(spec.name, total)
        if not all(self.part_done(p) for p in parts):
            return False
        entries = [json.loads((self.dir / self.part_dir(p) / "entry.json").read_text()) for p in parts]
        names = [e for e, _ in self.config.explainers if e in set(entries[0]["explainers"])]
        units = []
        for e in names:
            dirs = [self.dir / self.part_dir(p) for p in parts]
            scores = pd.concat([read_scores(d / "scores" / f"{e}.csv") for d in dirs], ignore_index=True)
            ex = [Explanations.load(d / "explanations" / f"{e}.npz", e, {}, {}) for d in dirs]
            joined = Explanations(e, {}, sum((x.example_ids for x in ex), []), sum((x.attributions for x in ex), []),
                                  *(np.concatenate([getattr(x, f) for x in ex]) for f in ("seconds", "forward",
                                                                                          "backward")),
                                  {}, np.concatenate([x.memory for x in ex]), sum((x.errors for x in ex), []),
                                  np.concatenate([x.tokens for x in ex]))
            curves: dict[str, np.ndarray] = {}
            files = [d / "curves" / f"{e}.npz" for d in dirs]
            if all(f.exists() for f in files):
                loaded = [dict(np.load(f, allow_pickle=False)) for f in files]
                for key in loaded[0]:
                    if key == "ids":
                        continue
                    width = max(z[key].shape[1] for z in loaded)
                    curves[key] = np.concatenate([np.pad(z[key], ((0, 0), (0, width - z[key].shape[1])),
                                                         constant_values=np.nan) for z in loaded])
            units.append(UnitResult(e, scores, joined, curves))
        manifest["tasks"][spec.name] = join_entries(entries, self.config.chunk)
        records = [json.loads((self.dir / self.part_dir(p) / "examples.json").read_text()) for p in parts]
        self.dir.write_json(f"examples/{spec.name}.json",
                            {**records[0], "examples": sum((r["examples"] for r in records), [])})
        self._write_units(spec.name, units, save)
        shutil.rmtree(self.dir / "parts" / spec.name, ignore_errors=True)
        if not any((self.dir / "parts").iterdir()):
            (self.dir / "parts").rmdir()
        return True

    def run_units(self, units: list[WorkUnit], info: dict[str, Any], spec: TaskSpec | None = None,
                  on_unit: Any = None) -> pd.DataFrame:
        """Execute work units of one task as one partition (the whole task), sharing its model and
        perturbation engine, and write their files. A single unit, e.g. one rebuilt with
        ``WorkUnit.from_dict`` on another machine, gives the same per-example scores as it does
        among all the others."""
        spec = spec or spec_from_dict(units[0].task)
        res = self.compute(Partition(spec.name, 0, 0, None, False), units, info.get(spec.name), spec)
        self.write_part(res, {"tasks": info}, on_unit)
        frames = [u.scores for u in res.units]
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
        """Record a problem with the current unit's manifest entry (so a resumed or merged run lists
        the same problems) and with the partition's result, which reports it when it is written."""
        self._unit_failures.append((list(once) if isinstance(once, tuple) else once, msg))
        self._messages.append((once, msg))

    def _log_failure(self, once: Any, msg: str) -> None:
        """Report a problem now, once per ``once`` key."""
        if once is not None:
            once = tuple(once) if isinstance(once, list) else once
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
