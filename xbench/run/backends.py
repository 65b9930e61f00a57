"""Where a run's partitions are computed: in this process (:class:`LocalBackend`), or on the workers
of a Ray cluster (:class:`RayBackend`, ``xbench run --backend ray``).

A backend takes the partitions the runner planned (:meth:`xbench.run.runner.Runner.plan`: chunks of
one task's examples with every explainer and metric of the config, so the perturbation engine's
de-duplication across explainers and metrics is kept) and yields their results
(:class:`~xbench.run.runner.PartResult`) as they finish; the runner writes them into the run
directory, so the layout, ``--resume`` and ``xbench reproduce`` do not depend on the backend. A
partition computes the same numbers wherever it runs (its seeds are derived from names, its engine
batches from its own inputs), so a Ray run is bit for bit the local run of the same config.

Ray is an optional dependency (``pip install -e ".[ray]"``), imported only here and only when the
Ray backend starts. Each Ray worker is an actor that loads a task's model once and keeps it for
every partition of that task it is given; it sets torch's threads to its CPU share. A worker that
dies (killed, out of memory, its node lost) is replaced and its partition run again, up to
``retries`` times; every retry is recorded in the manifest's ``backend`` block. An exception in
xbench's own code on a worker (bad input) is raised in the driver as it is (one line, exit 2).
"""
from __future__ import annotations

import os
import signal
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Iterator

from xbench.core import progress as progress_bars
from xbench.core.errors import XBenchError
from xbench.run.runner import LocalBackend

__all__ = ["LocalBackend", "RayBackend", "reachable"]

if TYPE_CHECKING:  # pragma: no cover
    from xbench.run.config import Partition, WorkUnit
    from xbench.run.runner import PartResult, Runner
    from xbench.spec.task import TaskSpec

Todo = list[tuple["Partition", list["WorkUnit"], "dict | None"]]

#: environment variables a worker needs as the driver has them (the cache, the fault hooks of the
#: tests, thread and tokenizer settings)
FORWARDED_ENV = ("TOKENIZERS_PARALLELISM", "OMP_WAIT_POLICY", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "HF_HOME")


def fault_kill(label: str, attempt: int) -> None:
    """Test hook: ``XBENCH_FAULT_KILL_PARTITION=<label>`` makes the worker computing that partition
    SIGKILL itself on its first attempt (a worker dying mid-run)."""
    if attempt == 0 and os.environ.get("XBENCH_FAULT_KILL_PARTITION") == label:
        os.kill(os.getpid(), signal.SIGKILL)


class _Worker:
    """A Ray actor: one runner over the run's config, its tasks loaded once and kept."""

    def __init__(self, config: Any, runtime: dict[str, Any], threads: int, plugins: dict, models: Any) -> None:
        from xbench.core.device import Runtime
        from xbench.run.config import import_plugins
        from xbench.run.runner import Runner

        import_plugins(plugins)  # the driver's plugin classes, imported by origin
        self.runner = Runner(config, out=os.devnull, progress=False, models=models)
        # torch's threads from this worker's CPU share: workers never oversubscribe the node
        self.runner.runtime = Runtime.create(**{**runtime, "threads": threads})
        try:
            import torch

            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set in this process
            pass

    def count(self, task: str) -> int:
        return len(self.runner.load(self.runner._spec(task))[0].examples)

    def compute(self, part: "Partition", units: list["WorkUnit"], before: dict | None, attempt: int) -> "PartResult":
        fault_kill(part.label, attempt)
        res = self.runner.compute(part, units, before, self.runner._spec(part.task))
        res.worker.update(attempt=attempt, threads=self.runner.runtime.threads,
                          oom_backoffs=list(self.runner.runtime.describe().get("oom_backoffs", [])))
        return res


def reachable(address: str, timeout: float = 5.0) -> None:
    """One clear line, fast, when ``host:port`` does not answer (``ray.init`` itself waits for minutes
    on an address where nothing listens). ``auto`` and ``ray://`` addresses are left to Ray."""
    import socket

    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise XBenchError(f"--address {address!r}: expected host:port of a Ray head node (e.g. 10.0.0.5:6379), "
                          f"auto, or ray://host:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise XBenchError(f"--address {address}: no Ray cluster reachable there ({e.strerror or e}); start one with "
                          f"`ray start --head` or check the address") from None


class RayBackend:
    """Partitions on the workers of a Ray cluster: a local one (``ray.init`` with this machine's
    usable cores) unless ``address`` names an existing cluster's head (``host:port`` or ``auto``).

    - ``workers``: how many actors (default: the cluster's CPUs / ``cpus_per_worker``);
    - ``cpus_per_worker``: each actor's CPU share, and its torch thread count;
    - ``gpus_per_worker``: GPUs per actor (Ray sets its ``CUDA_VISIBLE_DEVICES``);
    - ``retries``: how many times a partition whose worker died is run again on a new worker.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_worker: int = 1,
                 gpus_per_worker: float = 0, retries: int = 3) -> None:
        for what, v in (("--workers", workers), ("--cpus-per-worker", cpus_per_worker)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise XBenchError(f"{what} {v!r}: expected a positive integer")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise XBenchError(f"--retries {retries!r}: expected an integer >= 0")
        self.address, self.workers, self.cpus, self.gpus = address, workers, cpus_per_worker, gpus_per_worker
        self.retries = retries
        self.retried: list[dict[str, Any]] = []
        self.n_workers = 0
        self._ray: Any = None
        self._owned = False
        self._actors: list[Any] = []
        self._args: tuple | None = None
        self.stats: dict[str, Any] = {}

    # -- the cluster ---------------------------------------------------------------------------
    def check(self) -> None:
        """Before anything is written: Ray importable, the cluster's address answering."""
        try:
            import ray  # noqa: F401
        except ImportError:
            raise XBenchError('--backend ray: Ray is not installed; install it with pip install -e ".[ray]"') from None
        if self.address:
            reachable(self.address)

    def _start(self, runner: "Runner") -> Any:
        if self._ray is not None:
            return self._ray
        self.check()
        import ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            if self.address:
                try:
                    ray.init(address=self.address, **kwargs)
                except Exception as e:  # ConnectionError, ValueError, RuntimeError, ... depending on the failure
                    raise XBenchError(f"--address {self.address}: no Ray cluster reachable there "
                                      f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
            else:
                from xbench.core.device import usable_cpus

                ray.init(num_cpus=usable_cpus(), **kwargs)
            self._owned = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.n_workers = self.workers or max(1, cpus // self.cpus)
        models = ray.put(runner.models) if runner.models else None
        self._args = (runner.config, dict(runner.config.runtime), self.cpus, runner.config.plugins(), models)
        self._ray = ray
        return ray

    def _actor(self) -> Any:
        ray = self._ray
        env = {k: v for k, v in os.environ.items() if k.startswith("XBENCH_") or k in FORWARDED_ENV}
        cls = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=0)(_Worker)
        a = cls.options(runtime_env={"env_vars": env}).remote(*self._args)
        self._actors.append(a)
        return a

    def describe(self, before: dict | None = None) -> dict[str, Any]:
        earlier = list((before or {}).get("retries", [])) if (before or {}).get("name") == "ray" else []
        seen = {(r["partition"], r["attempt"], r.get("at")) for r in earlier}
        return {"name": "ray", "address": self.address or "local", "workers": self.n_workers,
                "cpus_per_worker": self.cpus, "gpus_per_worker": self.gpus, "max_retries": self.retries,
                "retries": earlier + [r for r in self.retried if (r["partition"], r["attempt"], r.get("at")) not in seen],
                **self.stats}

    def count(self, runner: "Runner", spec: "TaskSpec") -> int:
        ray = self._start(runner)
        if not self._actors:
            self._actor()
        return int(self._get(self._actors[0].count.remote(spec.name)))

    def _get(self, ref: Any) -> Any:
        """``ray.get``, with an exception raised by xbench's code on the worker raised as it is."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, XBenchError):
                raise cause from None
            raise

    # -- the work ------------------------------------------------------------------------------
    def execute(self, runner: "Runner", todo: Todo) -> Iterator["PartResult"]:
        if not todo:
            return
        ray = self._start(runner)
        # a worker that died, not an error in the work (an exception in xbench's code is a RayTaskError)
        faults = tuple(getattr(ray.exceptions, n) for n in ("RayActorError", "WorkerCrashedError", "ObjectLostError",
                                                            "OutOfMemoryError", "NodeDiedError")
                       if hasattr(ray.exceptions, n))
        queue = deque((p, u, b, 0) for p, u, b in todo)
        idle = list(self._actors)
        while len(self._actors) < min(self.n_workers, len(todo)):
            idle.append(self._actor())
        inflight: dict[Any, tuple[Any, tuple]] = {}
        t0, n_done, examples = time.perf_counter(), 0, 0
        with progress_bars.Counter(f"ray: partitions on {len(idle)} worker(s)", len(todo), "partition") as bar:
            while queue or inflight:
                while queue and idle:
                    actor, item = idle.pop(0), queue.popleft()
                    inflight[actor.compute.remote(item[0], item[1], item[2], item[3])] = (actor, item)
                ready, _ = ray.wait(list(inflight), num_returns=1)
                actor, item = inflight.pop(ready[0])
                try:
                    res = self._get(ready[0])
                except faults as e:
                    part, attempt = item[0], item[3] + 1
                    why = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                    self.retried.append({"partition": part.label, "attempt": attempt, "error": type(e).__name__,
                                         "detail": why, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
                    runner.log(f"xbench: note: ray worker died on partition {part.label} ({type(e).__name__}); "
                               f"attempt {attempt + 1} of {self.retries + 1} on a new worker")
                    self._drop(actor)
                    if attempt > self.retries:
                        raise XBenchError(f"partition {part.label}: its Ray worker died {attempt} times "
                                          f"({type(e).__name__}); finished partitions are written, continue with "
                                          f"`xbench run --resume {runner.out} --backend ray`") from None
                    idle.append(self._actor())
                    queue.appendleft((item[0], item[1], item[2], attempt))
                    bar.note(f"retries {len(self.retried)}")
                    continue
                idle.append(actor)
                n_done += 1
                examples += res.n
                rate = examples / max(1e-9, time.perf_counter() - t0)
                bar.update(1)
                bar.note(f"{examples} examples, {rate:.1f}/s, retries {len(self.retried)}")
                self.stats = {"partitions_done": self.stats.get("partitions_done", 0) + 1,
                              "examples_done": self.stats.get("examples_done", 0) + res.n}
                yield res
        secs = time.perf_counter() - t0
        runner.log(f"xbench: ray: {n_done} partition(s), {examples} examples in {secs:.1f} s "
                   f"({examples / max(secs, 1e-9):.1f} examples/s) on {self.n_workers} worker(s); "
                   f"{len(self.retried)} retried")

    def _drop(self, actor: Any) -> None:
        if actor in self._actors:
            self._actors.remove(actor)
        try:
            self._ray.kill(actor)
        except Exception:  # already dead
            pass

    def close(self) -> None:
        if self._ray is None:
            return
        for a in list(self._actors):
            self._drop(a)
        if self._owned:
            self._ray.shutdown()
        self._ray, self._owned = None, False
