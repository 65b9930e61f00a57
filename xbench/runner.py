"""The runner: every (task, explainer, metric) combination, into a run directory.

A :class:`WorkUnit` (one task, one explainer, a list of metrics) is plain data and
can be serialised and executed anywhere. Within a process, the units of one task
share a model and a :class:`~xbench.perturb.PerturbationEngine`: all their metrics'
perturbations are evaluated in one deduplicated pass.

Run directory layout::

    manifest.json            config, seeds, versions, task/model info, timings
    scores/<task>/<explainer>.csv   per-example scores of one unit (written atomically)
    explanations/<task>/<explainer>.npz  the attributions that were scored
    scores.csv               all per-example scores
    leaderboard.json|md|csv  aggregated tables
    agreement.json|md        pairwise agreement of explainers per task (xbench/agreement.py)
"""
from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .cache import cache_dir, content_key, verify_sidecar, write_sidecar
from .explainers import Explainer, Explanations
from .agreement import agreement
from .agreement import to_markdown as agreement_markdown
from .io import atomic_write, atomic_write_json, atomic_write_text
from .metrics import BAD_ATTRIBUTIONS, Context, Metric
from .perturb import PerturbationEngine
from .spec import TaskSpec
from .errors import XBenchError
from .leaderboard import read_scores
from .task import Task, check_available, load_task

SCORE_COLUMNS = ["task", "explainer", "metric", "example", "value", "error", "replacement", "target", "seed"]


@dataclass(frozen=True)
class WorkUnit:
    """One task x one explainer x a list of metrics: independent and serialisable."""

    task: dict[str, Any]
    explainer: str
    explainer_params: dict[str, Any]
    metrics: list[tuple[str, dict[str, Any]]]
    n: int | None
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WorkUnit":
        return cls(d["task"], d["explainer"], d["explainer_params"], [tuple(m) for m in d["metrics"]],
                   d["n"], d["seed"])


@dataclass
class RunConfig:
    tasks: list[TaskSpec]
    explainers: list[tuple[str, dict[str, Any]]]
    metrics: list[tuple[str, dict[str, Any]]]
    n: int | None = None
    seed: int = 0
    suite: str = "default"
    cache: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "n": self.n, "seed": self.seed,
                "tasks": [t.to_dict() for t in self.tasks],
                "explainers": [[n, {**Explainer.registry.get(n).params, **p}] for n, p in self.explainers],
                "metrics": [[n, {**Metric.registry.get(n).params, **p}] for n, p in self.metrics]}

    def units(self) -> list[WorkUnit]:
        return [WorkUnit(t.to_dict(), e, p, self.metrics, self.n, self.seed)
                for t in self.tasks for e, p in self.explainers]

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest.json") -> "RunConfig":
        """Inverse of :meth:`to_dict` (e.g. a manifest's ``config``): tasks validated like task files."""
        try:
            return cls([TaskSpec.from_dict(t, f"{where}: config.tasks[{i}]") for i, t in enumerate(d["tasks"])],
                       [(n, dict(p)) for n, p in d["explainers"]], [(n, dict(p)) for n, p in d["metrics"]],
                       n=d.get("n"), seed=int(d.get("seed", 0)), suite=d.get("suite", "custom"))
        except (KeyError, TypeError, ValueError) as e:
            raise XBenchError(f"{where}: field 'config' is not a run configuration ({type(e).__name__}: {e})") from e

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str = "manifest.json") -> "RunConfig":
        """The config a run recorded, ready to run again: its plugins imported first (the
        ``module:Class`` origins under ``plugins``), and each task's file path restored where that
        file still exists (so relative data paths resolve as they did)."""
        for kind, origins in (manifest.get("plugins") or {}).items():
            registry = {"explainers": Explainer.registry, "metrics": Metric.registry}.get(kind)
            for name, origin in (origins or {}).items():
                if registry is not None and name not in registry._classes:
                    registry.canonical(origin)
        if "config" not in manifest:
            raise XBenchError(f"{where}: field 'config' is missing")
        cfg = cls.from_dict(manifest["config"], where)
        for i, spec in enumerate(cfg.tasks):
            spec_path = manifest.get("tasks", {}).get(spec.name, {}).get("spec_path")
            if spec_path and Path(spec_path).is_file():
                cfg.tasks[i] = replace(spec, path=spec_path)
        return cfg

    def plugins(self) -> dict[str, dict[str, str]]:
        """``module:Class`` of every explainer and metric in the config that xbench does not ship."""
        out: dict[str, dict[str, str]] = {}
        for kind, registry, items in (("explainers", Explainer.registry, self.explainers),
                                      ("metrics", Metric.registry, self.metrics)):
            for name, _ in items:
                c = registry.get(name)
                if not c.__module__.startswith("xbench."):
                    out.setdefault(kind, {})[name] = f"{c.__module__}:{c.__qualname__}"
        return out

    def hash(self) -> str:
        """The config hash recorded in manifests (a stable hash of :meth:`to_dict`)."""
        return content_key(self.to_dict())


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("xbench", "torch", "transformers", "captum", "quantus", "numpy", "scipy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def git_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                           text=True, timeout=5)
        return r.stdout.strip() or None if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def weights_hash(model: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def targets_for(task: Task, engine: PerturbationEngine) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(targets, predictions, class probabilities (n, C)): the target is the predicted class unless
    the task says ``target: label``."""
    handles = np.array([engine.submit(ex, np.ones(ex.n_features, bool))[0] for ex in task.examples])
    engine.run()
    probs = engine.probs(handles)
    pred = probs.argmax(1)
    if task.spec.target == "label":
        return np.array([ex.label for ex in task.examples]), pred, probs
    return pred, pred, probs


def example_records(task: Task, targets: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """What a report's example viewer shows of each example, without the model: its features (tokens
    or words, pixel names, column names), gold rationale, label, target, prediction and confidence;
    for images the channel-mean pixel values and the (H, W) grid, for tabular rows the values."""
    spec = task.spec
    out: dict[str, Any] = {"task": spec.name, "modality": spec.modality, "granularity": spec.granularity,
                           "label_names": [str(n) for n in task.label_names], "examples": []}
    for i, ex in enumerate(task.examples):
        rec: dict[str, Any] = {
            "id": ex.id, "label": int(ex.label), "target": int(targets[i]), "pred": int(probs[i].argmax()),
            "confidence": float(probs[i].max()), "p_target": float(probs[i, targets[i]]),
            "features": [str(f) for f in ex.features],
            "rationale": None if ex.rationale is None else [int(v) for v in ex.rationale],
        }
        if spec.modality == "image":
            out["shape"] = list(ex.x.shape[-2:])
            rec["values"] = [round(float(v), 4) for v in ex.x.mean(axis=0).reshape(-1)]
        elif spec.modality == "tabular":
            rec["values"] = [round(float(v), 4) for v in ex.x]
        if getattr(ex, "truth", None) is not None:
            rec["truth"] = [float(v) for v in ex.truth]
        out["examples"].append(rec)
    return out


def curves_arrays(task: Task, metrics: list[Metric]) -> dict[str, np.ndarray]:
    """Each curve metric's per-example curves as one (n, L) array, NaN where unscored or shorter."""
    arrays = {}
    for m in metrics:
        if not m.curves:
            continue
        width = max(len(c) for c in m.curves.values())
        a = np.full((len(task.examples), width), np.nan)
        for i, c in m.curves.items():
            a[i, :len(c)] = c
        arrays[m.name] = a
    return arrays


class MetricCost:
    """What one metric costs on one (task, explainer), measured around its plan and score calls.

    ``inputs_new`` are the inputs it was first to submit to the shared engine: the forward passes
    it caused in the deduplicated pass (an input another metric or explainer already asked for
    is free). ``forward_passes`` adds the passes it made itself (re-explanations, searches)."""

    def __init__(self, task: Task, ctx: Context) -> None:
        self.task, self.ctx = task, ctx
        self.seconds = 0.0
        self.forward = self.backward = self.requested = self.new = 0

    def __enter__(self) -> "MetricCost":
        e, m = self.ctx.engine, self.task.model
        self._start = (time.perf_counter(), m.n_forward, m.n_backward, e.n_requested, e.n_unique,
                       self.ctx.reexplain_passes[0], self.ctx.reexplain_passes[1])
        return self

    def __exit__(self, *exc: object) -> None:
        t, f, b, r, u, rf, rb = self._start
        e, m, (cf, cb) = self.ctx.engine, self.task.model, self.ctx.reexplain_passes
        self.seconds += time.perf_counter() - t
        # passes on this task's model (engine runs, re-explanations) plus re-explanations on others
        self.forward += (m.n_forward - f) + (cf - rf)
        self.backward += (m.n_backward - b) + (cb - rb)
        self.requested += e.n_requested - r
        self.new += e.n_unique - u

    def summary(self) -> dict[str, Any]:
        n = max(1, self.ctx.n)
        return {"seconds_per_example": self.seconds / n, "forward_passes_per_example": self.forward / n,
                "backward_passes_per_example": self.backward / n, "inputs_requested": self.requested,
                "inputs_new": self.new, "note": "seconds exclude the shared engine pass; inputs_new are "
                                                "the forward passes this metric added to it"}


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
                 resume: bool = False, shard: tuple[int, int] | None = None) -> None:
        self.config, self.out, self.progress = config, Path(out), progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.resume, self.shard = resume, shard
        if shard is not None and not (1 <= shard[0] <= shard[1]):
            raise XBenchError(f"--shard {shard[0]}/{shard[1]}: need 1 <= K <= N")
        self.failures: list[str] = []
        self._seen: set[Any] = set()
        self._unit_failures: list[tuple[Any, str]] = []

    def explain(self, task: Task, explainer: Explainer, targets: np.ndarray, model_hash: str,
                seed: int) -> Explanations:
        """Attributions, from the on-disk cache when the same (task, explainer, params, seed) ran before.
        A cache entry whose sha256 does not match the one recorded beside it is recomputed."""
        key = content_key({"task": task.spec.to_dict(), "data": task.fingerprint(), "model": model_hash,
                           "explainer": explainer.name, "version": explainer.version, "params": explainer.p,
                           "seed": seed, "targets": targets.tolist()})
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
        ext = {"scores": "csv", "explanations": "npz", "curves": "npz"}[kind]
        return self.out / kind / task / f"{explainer}.{ext}"

    def my_units(self) -> list[WorkUnit]:
        units = self.config.units()
        if self.shard is None:
            return units
        k, n = self.shard
        return [u for i, u in enumerate(units) if i % n == k - 1]

    def _start_manifest(self) -> dict[str, Any]:
        cfg, out = self.config, self.out
        path = out / "manifest.json"
        if self.resume:
            if not path.exists():
                raise XBenchError(f"{out}: not a run directory (no manifest.json); nothing to resume")
            manifest = json.loads(path.read_text())
            if manifest.get("config_hash") != cfg.hash():
                raise XBenchError(f"{path}: field 'config_hash' is {manifest.get('config_hash')!r}, not this config's "
                                  f"{cfg.hash()!r}; resume continues a run with the same config only")
            for tmp in out.rglob(".*.tmp"):  # a write the interruption cut short: never renamed into place
                tmp.unlink(missing_ok=True)
            manifest.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            manifest.update(status="running", versions=versions(), git_commit=git_commit())
            return manifest
        if path.exists() and json.loads(path.read_text()).get("status") != "complete" and any(out.glob("scores/*/*.csv")):
            raise XBenchError(f"{out}: holds an unfinished run; continue it with `xbench run --resume {out}` "
                              f"or choose another --out")
        return {
            "xbench_run": 1, "status": "running", "config": cfg.to_dict(), "config_hash": cfg.hash(),
            "seeds": {"run": cfg.seed}, "shard": None if self.shard is None else list(self.shard),
            "plugins": cfg.plugins(),
            "versions": versions(), "git_commit": git_commit(),
            "hardware": {"machine": platform.machine(), "processor": platform.processor(),
                         "system": platform.system(), "cpus": __import__("os").cpu_count(),
                         "torch_threads": __import__("torch").get_num_threads()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tasks": {},
        }

    def done(self, manifest: dict[str, Any], unit: WorkUnit, task: str) -> bool:
        """A unit is done when its scores file exists, or the task found its explainer not applicable."""
        na = manifest.get("tasks", {}).get(task, {}).get("explainers_not_applicable", [])
        return unit.explainer in na or self.unit_path("scores", task, unit.explainer).exists()

    def run(self) -> Path:
        cfg, out = self.config, self.out
        check_available(cfg.tasks)  # before anything is written: a task that cannot run here leaves no run dir
        out.mkdir(parents=True, exist_ok=True)
        t_start = time.time()
        manifest = self._start_manifest()
        atomic_write_json(out / "manifest.json", manifest)
        units = self.my_units()
        for spec in cfg.tasks:
            mine = [u for u in units if u.task == spec.to_dict() and not self.done(manifest, u, spec.name)]
            if mine:
                self.run_units(mine, manifest["tasks"], spec,
                               on_unit=lambda: atomic_write_json(out / "manifest.json", manifest))
            atomic_write_json(out / "manifest.json", manifest)
        seconds = round(time.time() - t_start, 2)  # this process's time (a resumed run: since the resume)
        if self.shard is not None:
            manifest.update(status="shard-complete", wall_seconds=seconds)
            atomic_write_json(out / "manifest.json", manifest)
            return out
        return self.finish(manifest, seconds)

    def finish(self, manifest: dict[str, Any], wall_seconds: float | None = None) -> Path:
        """Build the run-level files from the per-unit files, in config order; mark the run complete."""
        from .leaderboard import write_leaderboard

        out = self.out
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
        atomic_write(out / "scores.csv", lambda f: scores.to_csv(f, index=False))
        write_leaderboard(out, scores, manifest)
        if agree:
            a = pd.concat(agree, ignore_index=True)
            atomic_write_json(out / "agreement.json", json.loads(a.to_json(orient="records")))
            atomic_write_text(out / "agreement.md", agreement_markdown(a))
        manifest.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), failures=self.failures)
        if wall_seconds is not None:
            manifest["wall_seconds"] = wall_seconds
        atomic_write_json(out / "manifest.json", manifest)
        return out

    def run_units(self, units: list[WorkUnit], info: dict[str, Any], spec: TaskSpec | None = None,
                  on_unit: Any = None) -> pd.DataFrame:
        """Execute work units of one task, sharing its model and perturbation engine.

        A single unit, e.g. one rebuilt with ``WorkUnit.from_dict`` on another machine, runs the same
        way and gives the same per-example scores as it does among all the others.
        """
        if len({json.dumps(u.task, sort_keys=True) for u in units}) != 1 or len({(u.n, u.seed) for u in units}) != 1:
            raise ValueError("run_units takes units of one task, with one n and one seed")
        spec = spec or TaskSpec.from_dict(units[0].task)
        n, seed = units[0].n, units[0].seed
        t0 = time.perf_counter()
        task = load_task(spec, n)
        engine = PerturbationEngine(task.model, spec.replacement)
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
            "replacement": spec.replacement, "granularity": spec.granularity, "target": spec.target,
            "explainers": dict(before.get("explainers", {})), "n_truncated": sum(ex.truncated for ex in task.examples),
        }
        if before and before.get("fingerprint") != tinfo["fingerprint"]:
            raise XBenchError(f"task {spec.name}: the data slice changed since the run started (fingerprint "
                              f"{before.get('fingerprint')} -> {tinfo['fingerprint']}); start a new run")
        if before and before.get("model_weights_sha256") != model_hash:
            raise XBenchError(f"task {spec.name}: the model weights changed since the run started; start a new run")
        # phase 1: explain, then let every metric submit its perturbations
        planned = []
        tinfo["explainers_not_applicable"] = list(before.get("explainers_not_applicable", []))
        for unit in units:
            explainer = Explainer.registry.get(unit.explainer)(**unit.explainer_params)
            if not explainer.applies_to(task):
                if explainer.name not in tinfo["explainers_not_applicable"]:
                    tinfo["explainers_not_applicable"].append(explainer.name)
                continue
            metrics = [Metric.registry.get(n)(**p) for n, p in unit.metrics]
            inapplicable = [m.name for m in metrics if not m.applies_to(task, explainer)]
            metrics = [m for m in metrics if m.name not in inapplicable]
            expl = self.explain(task, explainer, targets, model_hash, seed)
            ctx = Context(task, expl, targets, engine, seed, explainer)
            self._report_bad(spec, explainer.name, ctx)
            meters = {m.name: MetricCost(task, ctx) for m in metrics}
            plans = []
            for m in metrics:
                with meters[m.name]:
                    plans.append((m, m.plan(ctx)))
            planned.append((explainer, expl, ctx, plans, meters))
            tinfo["explainers"][explainer.name] = {"params": expl.params, **expl.meta,
                                                   "metrics_not_applicable": inapplicable,
                                                   "failures": self._take_failures()}
        # phase 2: one deduplicated, length-sorted pass over every requested input
        f_explain = task.model.n_forward
        t1 = time.perf_counter()
        engine.run(progress=self.progress)
        tinfo["engine"] = {"shared_pass": {"requested": engine.n_requested, "unique": engine.n_unique,
                                           "forward_passes": task.model.n_forward - f_explain + targets_passes,
                                           "seconds": round(time.perf_counter() - t1, 3)}}
        # phase 3: score and write each unit atomically, its scores file last (it marks the unit done)
        atomic_write_json(self.out / "examples" / f"{spec.name}.json", example_records(task, targets, probs))
        frames = []
        for explainer, expl, ctx, plans, meters in planned:
            rows = []
            for m, states in plans:
                with meters[m.name]:
                    values, errors = m.score(ctx, states)
                if m.notes:
                    tinfo["explainers"][explainer.name].setdefault("metric_notes", {})[m.name] = m.notes
                for i, ex in enumerate(task.examples):
                    rows.append((spec.name, explainer.name, m.name, ex.id, values[i], errors[i] or "",
                                 spec.replacement, int(targets[i]), seed))
                bad = [e for e in errors if e and e != BAD_ATTRIBUTIONS]  # those are reported per explainer
                if bad:
                    first = task.examples[errors.index(bad[0])].id
                    self._fail(f"{spec.path}: example {first}: {bad[0]} ({len(bad)} example(s); counted in "
                               f"n_failed of {m.name})", once=(spec.name, bad[0]))
            entry = tinfo["explainers"][explainer.name]
            entry["metric_cost"] = {k: v.summary() for k, v in meters.items()}
            entry["failures"] = entry.get("failures", []) + self._take_failures()
            df = pd.DataFrame(rows, columns=SCORE_COLUMNS)
            expl.save(self.unit_path("explanations", spec.name, explainer.name))
            curves = curves_arrays(task, [m for m, _ in plans])
            if curves:
                atomic_write(self.unit_path("curves", spec.name, explainer.name),
                             lambda f: np.savez(f, ids=np.array([ex.id for ex in task.examples], dtype=str),
                                                **curves), mode="wb")
            if on_unit is not None:
                on_unit()  # the manifest, with this unit's entry, before its scores file
            atomic_write(self.unit_path("scores", spec.name, explainer.name), lambda f: df.to_csv(f, index=False))
            frames.append(df)
        # metrics that search (normalised AOPC bounds) or sample (infidelity) add inputs while scoring
        tinfo["engine"].update(requested=engine.n_requested, unique=engine.n_unique)
        tinfo["seconds"] = round(time.perf_counter() - t0, 2)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)

    def _report_bad(self, spec: TaskSpec, name: str, ctx: Context) -> None:
        bad = np.flatnonzero(~ctx.valid)
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

