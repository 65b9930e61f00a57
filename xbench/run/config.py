"""The run configuration: which tasks, explainers (with parameters) and metrics, n and seed; built in
one place (:func:`build_config`) for the CLI, the pytest plugin, ``publish`` and the Python API.

A :class:`WorkUnit` (one task, one explainer, a list of metrics) is plain data and can be serialised
and executed anywhere. The config hash (:meth:`RunConfig.hash`) identifies what a run computes; where
it runs (device, dtype, threads) is recorded beside it, not in it.
"""
from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from xbench.core.cache import content_key
from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric
from xbench.spec.suite import Suite, read_suite
from xbench.spec.task import TaskSpec
from xbench.tasks.catalogue import parse_task, resolve_task, spec_from_dict, task_specs

Entry = tuple[str, dict[str, Any]]


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


@dataclass(frozen=True)
class Partition:
    """One piece of a run: examples ``lo:hi`` of one task (all of them when not ``chunked``), with
    every explainer and metric of the config. The unit of work of every backend and of ``--shard``."""

    task: str
    index: int
    lo: int
    hi: int | None
    chunked: bool

    @property
    def label(self) -> str:
        return f"{self.task}#{self.index}" if self.chunked else self.task

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunConfig:
    tasks: list[TaskSpec]
    explainers: list[tuple[str, dict[str, Any]]]
    metrics: list[tuple[str, dict[str, Any]]]
    n: int | None = None
    seed: int = 0
    suite: str = "default"
    cache: bool = True
    #: where and how to run (device, dtype, threads, batch size): recorded in the manifest, not hashed,
    #: so a run on a GPU and one on the CPU share their config
    runtime: dict[str, Any] = field(default_factory=dict)
    #: examples per partition (:meth:`partitions`); None: each task is one partition. Part of what a
    #: run computes (the perturbation engine's batches are a partition's), so it is in the hash when set
    chunk: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"suite": self.suite, "n": self.n, "seed": self.seed,
             "tasks": [t.to_dict() for t in self.tasks],
             "explainers": [[n, {**Explainer.registry.get(n).params, **p}] for n, p in self.explainers],
             "metrics": [[n, {**Metric.registry.get(n).params, **p}] for n, p in self.metrics]}
        if self.chunk is not None:  # left out when unset: configs from before chunks keep their hash
            d["chunk"] = self.chunk
        return d

    def partitions(self, counts: Mapping[str, int]) -> list["Partition"]:
        """The run's partitions, in config order: per task, its examples in chunks of ``chunk``
        (``counts``: examples per task, needed only when ``chunk`` is set), each with all of the
        task's explainers, so one engine pass serves every explainer and metric of a chunk. Every
        backend and ``--shard`` use this partition; a partition computes the same numbers wherever
        it runs."""
        return [p for t in self.tasks for p in self.task_partitions(t.name, counts.get(t.name, 0))]

    def task_partitions(self, task: str, total: int) -> list["Partition"]:
        """One task's partitions: the whole task, or its ``total`` examples in chunks of ``chunk``."""
        if self.chunk is None:
            return [Partition(task, 0, 0, None, False)]
        return [Partition(task, k, lo, min(lo + self.chunk, total), True)
                for k, lo in enumerate(range(0, max(total, 1), self.chunk))]

    def units(self) -> list[WorkUnit]:
        return [WorkUnit(t.to_dict(), e, p, self.metrics, self.n, self.seed)
                for t in self.tasks for e, p in self.explainers]

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest.json") -> "RunConfig":
        """Inverse of :meth:`to_dict` (e.g. a manifest's ``config``): tasks validated like task files."""
        try:
            chunk = d.get("chunk")
            return cls([spec_from_dict(t, f"{where}: config.tasks[{i}]") for i, t in enumerate(d["tasks"])],
                       [(n, dict(p)) for n, p in d["explainers"]], [(n, dict(p)) for n, p in d["metrics"]],
                       n=d.get("n"), seed=int(d.get("seed", 0)), suite=d.get("suite", "custom"),
                       chunk=None if chunk is None else int(chunk))
        except (KeyError, TypeError, ValueError) as e:
            raise XBenchError(f"{where}: field 'config' is not a run configuration ({type(e).__name__}: {e})") from e

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], where: str = "manifest.json",
                      run_dir: str | Path | None = None) -> "RunConfig":
        """The config a run recorded, ready to run again: its plugins imported first (the
        ``module:Class`` origins under ``plugins``), and each task's file path restored (so relative
        data paths resolve as they did): the run's own copy ``<run_dir>/inputs/<task>.yaml`` where it
        has one (the Python API's runs), else the recorded file where it still exists."""
        import_plugins(manifest.get("plugins"))
        if not isinstance(manifest.get("config"), dict):
            raise XBenchError(f"{where}: field 'config' is missing")
        cfg = cls.from_dict(manifest["config"], where)
        rt = manifest.get("runtime") or {}
        if rt.get("dtype") not in (None, "float32"):
            cfg.runtime["dtype"] = rt["dtype"]  # reduced precision changes values: reproduce it
        backend = manifest.get("backend") or {}
        if backend.get("name") == "ray" and backend.get("cpus_per_worker"):
            # the CPU thread count can change the last bits of gradients: run again (reproduce, or
            # resume in this process) with the threads the Ray workers had
            cfg.runtime["threads"] = int(backend["cpus_per_worker"])
        for i, spec in enumerate(cfg.tasks):
            spec_path = manifest.get("tasks", {}).get(spec.name, {}).get("spec_path")
            own = Path(run_dir) / "inputs" / f"{spec.name}.yaml" if run_dir is not None else None
            if own is not None and own.is_file():
                cfg.tasks[i] = replace(spec, path=str(own))
            elif spec_path and Path(spec_path).is_file():
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


def import_plugins(plugins: Mapping[str, Mapping[str, str]] | None) -> None:
    """Register the explainers and metrics a run used that xbench does not ship, by their
    ``module:Class`` origins (:meth:`RunConfig.plugins`), where this process lacks them."""
    for kind, origins in (plugins or {}).items():
        registry = {"explainers": Explainer.registry, "metrics": Metric.registry}.get(kind)
        for name, origin in (origins or {}).items():
            if registry is not None and name not in registry._classes:
                registry.canonical(origin)


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



# -- one config builder ------------------------------------------------------------------------------

def _checked(where: str, field_name: str, items: list[Entry], registry: Any) -> list[Entry]:
    """Entries with canonical names (``pkg.module:Class`` -> the class's ``name``), each constructed
    once so that a typo or a bad parameter is one line naming the entry."""
    out = []
    for j, (name, params) in enumerate(items):
        try:
            name = registry.canonical(name)
            registry.get(name)(**params)
        except XBenchError as e:
            raise XBenchError(f"{where}: field '{field_name}[{j}]': {e}") from None
        out.append((name, params))
    return out


def load_suite(name_or_path: str) -> Suite:
    """A suite by name (``suites/<name>.yaml``) or path, its metric and explainer names checked."""
    s = read_suite(name_or_path)
    s.metrics = _checked(str(s.path), "metrics", s.metrics, Metric.registry)
    if s.explainers is not None:
        s.explainers = _checked(str(s.path), "explainers", s.explainers, Explainer.registry)
    return s


def _name_of(item: Any, registry: Any, base: type, kind: str) -> str:
    """A registered name, ``pkg.module:Class`` or a subclass of ``base`` -> the name results use."""
    if isinstance(item, type):
        if not issubclass(item, base) or "name" not in item.__dict__:
            raise XBenchError(f"{item!r} is not an xbench {base.__name__} subclass with its own 'name'")
        return item.name
    if not isinstance(item, str):
        raise XBenchError(f"{kind} {item!r}: expected a name, 'module:Class' or a {base.__name__} class")
    return registry.canonical(item)


def _entries(items: Any, defaults: Mapping[str, dict], registry: Any, base: type, kind: str) -> list[Entry]:
    """``items``: names, ``module:Class`` strings, classes or ``(name or class, params)`` pairs; a bare
    name takes its parameters from ``defaults`` (the suite's)."""
    if isinstance(items, (str, type)) or (isinstance(items, tuple) and len(items) == 2
                                          and isinstance(items[1], Mapping)):
        items = [items]
    out = []
    for item in items:
        item, params = (item[0], dict(item[1])) if isinstance(item, tuple) else (item, None)
        name = _name_of(item, registry, base, kind)
        if isinstance(item, type) and registry.get(name) is not item:
            other = registry.get(name)
            raise XBenchError(f"{kind} {name!r}: two classes have this name ({item.__module__}.{item.__qualname__} and "
                              f"{other.__module__}.{other.__qualname__}); give one another name")
        params = dict(defaults.get(name, {})) if params is None else params
        registry.get(name)(**params)  # a bad parameter is an error here
        out.append((name, params))
    return out


def _task(t: Any) -> TaskSpec:
    if isinstance(t, TaskSpec):
        return t
    if isinstance(t, Mapping):
        return parse_task(dict(t), f"<task {t.get('name', '?')}>")
    return resolve_task(str(t))


def build_config(tasks: Sequence[Any] = (), suite: str | Sequence[Any] = "default", explainers: Any = None,
                 metrics: Any = None, n: int | None = None, seed: int = 0, cache: bool = True,
                 builtin_explainers: bool = False, runtime: Mapping[str, Any] | None = None,
                 chunk: int | None = None) -> RunConfig:
    """The one way names become a :class:`RunConfig` (CLI, pytest plugin, ``publish``, Python API).

    - ``tasks``: names, task YAML paths, task mappings or :class:`TaskSpec`; none: the default
      catalogue (``tasks/*.yaml`` with ``default: true``);
    - ``suite``: a suite name or path, or a list of metric entries (a custom suite);
    - ``explainers``/``metrics``: None for the suite's (all registered explainers when the suite says
      ``all``), else names, ``pkg.module:Class`` strings, classes or ``(name, params)`` pairs; a bare
      name takes the suite's parameters for it;
    - ``builtin_explainers``: with ``explainers: all``, xbench's own explainers only (what a published
      leaderboard means does not depend on plugins registered in the process);
    - ``n``: examples per task (default: the suite's, else all);
    - ``chunk``: examples per partition (default: one partition per task); the unit of work of the
      Ray backend and of ``--shard``.
    """
    if isinstance(suite, str):
        s = load_suite(suite)
    else:
        s = Suite("custom", _entries(list(suite), {}, Metric.registry, Metric, "metric"))
    specs = [_task(t) for t in tasks]
    if not specs:
        specs = [t for t in task_specs().values() if t.default]
        if not specs:
            raise XBenchError("no default tasks found (tasks/*.yaml with 'default: true'); name a task")
    suite_explainers = s.explainers or [(name, {}) for name in Explainer.registry.names()
                                        if not builtin_explainers
                                        or Explainer.registry.get(name).__module__.startswith("xbench.")]
    chosen = suite_explainers if explainers is None else \
        _entries(explainers, dict(suite_explainers), Explainer.registry, Explainer, "explainer")
    if not chosen:
        raise XBenchError("name at least one explainer")
    chosen_metrics = s.metrics if metrics is None else _entries(metrics, dict(s.metrics), Metric.registry, Metric,
                                                                "metric")
    if not chosen_metrics:
        raise XBenchError("name at least one metric")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
        raise XBenchError("--n must be a positive integer")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0):
        raise XBenchError(f"--chunk {chunk!r}: expected a positive integer (examples per partition)")
    return RunConfig(specs, chosen, chosen_metrics, n=n or s.n, seed=seed, suite=s.name, cache=cache,
                     runtime=dict(runtime or {}), chunk=chunk)
