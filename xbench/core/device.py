"""Where and how models run: device, precision, CPU threads, batch sizes, out-of-memory back-off and
peak memory. One :class:`Runtime` per run, recorded in the manifest.

- **Device**: ``auto`` (the first CUDA device if there is one, else the CPU), ``cpu``, ``cuda`` or
  ``cuda:N``. A CUDA device that is not there is one clear error, not a silent fall-back.
- **Precision**: the model's own (float32) unless ``dtype`` is ``bfloat16`` or ``float16``; outputs
  are read back in float32 either way. Reduced precision changes the numbers, so it is off by
  default and recorded.
- **Threads** (CPU): as many intra-op threads as cores the process may use: the CPU affinity mask
  (``os.sched_getaffinity``) capped by the cgroup CPU quota (v2 ``cpu.max``, v1
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), unless ``threads`` says otherwise. OpenMP threads
  wait passively (``OMP_WAIT_POLICY=PASSIVE``, set by ``import xbench`` when torch is not loaded yet
  and the variable is unset): with another CPU-heavy process on the machine, spinning threads made
  a run 8-11x slower; passive ones share the cores.
- **Batch sizes**: the adapter's default rows per forward batch on the CPU; on CUDA, sized from the
  free device memory (:meth:`Runtime.auto_batch_size`). An out-of-memory error halves the batch and
  retries the same rows (:meth:`Runtime.backoff`); every halving is recorded. Per-row outputs do not
  depend on the batch they were computed in, so a back-off changes timings, not values.
- **Peak memory** per explained example (:class:`PeakMemory`): on CUDA the allocator's peak
  (``torch.cuda.max_memory_allocated``) above what was allocated before the call; on the CPU the
  growth of the process's peak resident set size during the call (Linux ``VmHWM``, reset through
  ``/proc/self/clear_refs`` before each call, with freed heap memory first returned to the system by
  ``malloc_trim``), a measure of what the call added on top of the model and data already in memory.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from xbench.core.errors import XBenchError

T = TypeVar("T")
DTYPES = ("float32", "bfloat16", "float16")


def usable_cpus() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def cgroup_cpu_quota(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The cgroup CPU quota in cores (cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``), or None when there is none."""
    root = Path(root)
    try:
        v2 = (root / "cpu.max").read_text().split()
        if v2 and v2[0] != "max":
            return int(v2[0]) / int(v2[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def resolve_device(device: str | None) -> str:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a device string torch accepts; one line if unavailable."""
    import torch

    d = (device or "auto").strip().lower()
    if d == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if d == "cpu":
        return "cpu"
    if d == "cuda" or d.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise XBenchError(f"--device {device}: no CUDA device is available here (torch {torch.__version__}, "
                              f"built with CUDA {torch.version.cuda or 'none'}); use --device cpu or auto")
        idx = 0 if d == "cuda" else d.split(":", 1)[1]
        if not str(idx).isdigit() or int(idx) >= torch.cuda.device_count():
            raise XBenchError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return f"cuda:{int(idx)}"
    raise XBenchError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory error (torch's CUDA OOM, or a RuntimeError that says so)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(e, oom):
        return True
    return isinstance(e, (RuntimeError, MemoryError)) and ("out of memory" in str(e).lower()
                                                            or isinstance(e, MemoryError))


@dataclass
class Runtime:
    """The execution environment of a run (module docstring); :meth:`describe` goes in the manifest."""

    device: str = "cpu"
    dtype: str | None = None
    threads: int | None = None
    #: rows per forward batch; None: the adapter's default (CPU) or sized from free memory (CUDA)
    batch_size: int | None = None
    #: where out-of-memory back-offs happened: {"where", "from", "to"}
    backoffs: list[dict[str, Any]] = field(default_factory=list)
    #: how the engine's batch size was set from free memory (CUDA), for the manifest
    sized: dict[str, Any] | None = None

    @classmethod
    def create(cls, device: str | None = "auto", dtype: str | None = None, threads: int | None = None,
               batch_size: int | None = None) -> "Runtime":
        """Resolve the device, check the dtype and thread count, and set torch's CPU threads."""
        import torch

        if dtype not in (None, *DTYPES):
            raise XBenchError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise XBenchError(f"--threads {threads!r}: expected a positive integer")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size < 1):
            raise XBenchError(f"--batch-size {batch_size!r}: expected a positive integer")
        rt = cls(resolve_device(device), None if dtype == "float32" else dtype, threads or usable_cpus(), batch_size)
        torch.set_num_threads(rt.threads)
        return rt

    @property
    def torch_device(self) -> Any:
        import torch

        return torch.device(self.device)

    @property
    def torch_dtype(self) -> Any:
        import torch

        return None if self.dtype is None else getattr(torch, self.dtype)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def place(self, model: Any) -> Any:
        """The model moved to this device (and dtype); a no-op on the CPU in float32."""
        if self.device != "cpu":
            model = model.to(self.device)
        if self.dtype is not None:
            model = model.to(self.torch_dtype)
        return model

    def describe(self) -> dict[str, Any]:
        import torch

        d: dict[str, Any] = {"device": self.device, "dtype": self.dtype or "float32",
                             "threads": self.threads or torch.get_num_threads(),
                             "usable_cpus": usable_cpus(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                             "batch_size": self.batch_size or ("sized from free memory" if self.cuda else
                                                               "adapter default"),
                             "oom_backoffs": list(self.backoffs)}
        if self.sized:
            d["batch_sizing"] = dict(self.sized)
        if self.cuda:
            p = torch.cuda.get_device_properties(self.torch_device)
            d.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2**30, 1))
        return d

    def auto_batch_size(self, default: int, bytes_per_row: float | None = None, share: float = 0.5) -> int:
        """Rows per batch: ``batch_size`` if set; on the CPU the adapter's ``default``; on CUDA as many
        rows of ``bytes_per_row`` as fit in ``share`` of the free device memory (at least 1, at most
        16x the default)."""
        if self.batch_size:
            return self.batch_size
        if not self.cuda or not bytes_per_row:
            return default
        import torch

        free, _ = torch.cuda.mem_get_info(self.torch_device)
        return int(max(1, min(16 * default, free * share // bytes_per_row)))

    def backoff(self, run: Callable[[int], T], size: int, where: str) -> tuple[T, int]:
        """``run(size)``; on an out-of-memory error, free the cache, halve ``size`` and retry, down to 1
        (then the error is raised). Returns (result, the size that worked); every halving is recorded."""
        while True:
            try:
                return run(size), size
            except Exception as e:  # noqa: BLE001 - only out-of-memory errors are caught, the rest re-raised
                if not is_oom(e) or size <= 1:
                    raise
                self.empty_cache()
                new = max(1, size // 2)
                self.backoffs.append({"where": where, "from": size, "to": new})
                size = new

    def empty_cache(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.empty_cache()


# -- peak memory ---------------------------------------------------------------------------------

def _status_kb(field_name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _trim() -> None:
    """Return freed heap memory to the system (glibc ``malloc_trim``), so a peak measures new memory."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory of a block, in MiB (module docstring): ``with PeakMemory(runtime) as m: ...`` then
    ``m.mib``. ``how`` names the measure; ``mib`` is NaN where it cannot be measured."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        self.cuda = bool(runtime is not None and runtime.cuda)
        self.device = runtime.torch_device if self.cuda else None
        self.mib = float("nan")
        self.how = "cuda max_memory_allocated above the allocation before" if self.cuda else \
            "growth of peak RSS (VmHWM reset per call, after malloc_trim)"

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            _trim()
            self._ok = _reset_hwm()
            self._start = _status_kb("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self.mib = (torch.cuda.max_memory_allocated(self.device) - self._start) / 2**20
            return
        peak = _status_kb("VmHWM")
        if self._ok and peak is not None and self._start is not None:
            self.mib = max(0, peak - self._start) / 1024

