"""Device, precision, threads, out-of-memory back-off and peak memory (xbench/core/device.py): the CPU
paths, and the GPU-only logic by simulation (an out-of-memory error raised on purpose)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from xbench.core import device
from xbench.core.device import PeakMemory, Runtime, cgroup_cpu_quota, is_oom, resolve_device, usable_cpus
from xbench.core.errors import XBenchError


def test_devices_resolve_and_a_missing_gpu_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device(None) == "cpu" and resolve_device("CPU") == "cpu"
    for bad in ("cuda", "cuda:1"):
        with pytest.raises(XBenchError, match="no CUDA device is available here"):
            resolve_device(bad)
    with pytest.raises(XBenchError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda:0" and resolve_device("cuda") == "cuda:0" and resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(XBenchError, match="has 2 CUDA device"):
        resolve_device("cuda:2")


def test_threads_come_from_affinity_and_cgroup_quota(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # cgroup v2: 1.5 cores
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert cgroup_cpu_quota(v1) == 3.0
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_cpu_quota(v1) is None
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda root="/sys/fs/cgroup": 1.5)
    assert usable_cpus() == 1  # the quota caps the affinity (never oversubscribe)
    monkeypatch.setattr(device, "cgroup_cpu_quota", lambda root="/sys/fs/cgroup": None)
    assert usable_cpus() == 4


def test_runtime_sets_and_records_threads_and_rejects_bad_values():
    before = torch.get_num_threads()
    try:
        rt = Runtime.create("cpu", threads=1)
        assert torch.get_num_threads() == 1
        d = rt.describe()
        assert d["device"] == "cpu" and d["threads"] == 1 and d["dtype"] == "float32" and d["oom_backoffs"] == []
    finally:
        torch.set_num_threads(before)
    for kw, needle in (({"dtype": "int8"}, "--dtype"), ({"threads": 0}, "--threads"), ({"batch_size": -1}, "--batch-size")):
        with pytest.raises(XBenchError, match=needle):
            Runtime.create("cpu", **kw)


def oom() -> BaseException:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") \
        if hasattr(torch.cuda, "OutOfMemoryError") else RuntimeError("CUDA out of memory")


def test_backoff_halves_until_it_fits_and_records_each_halving():
    rt = Runtime()
    calls = []

    def run(size):
        calls.append(size)
        if size > 3:
            raise oom()
        return size * 10

    assert rt.backoff(run, 16, "engine") == (20, 2)
    assert calls == [16, 8, 4, 2]
    assert rt.backoffs == [{"where": "engine", "from": 16, "to": 8}, {"where": "engine", "from": 8, "to": 4},
                           {"where": "engine", "from": 4, "to": 2}]
    assert is_oom(oom()) and not is_oom(ValueError("out of range"))
    with pytest.raises(ValueError):  # anything else is raised at once, never retried
        rt.backoff(lambda s: (_ for _ in ()).throw(ValueError("bad")), 8, "engine")
    with pytest.raises(type(oom())):  # one row that does not fit: the error is raised, not hidden
        Runtime().backoff(lambda s: (_ for _ in ()).throw(oom()), 1, "engine")


class OOMAbove:
    """Wraps an adapter's ``outputs``: batches of more than ``limit`` rows raise out-of-memory."""

    def __init__(self, adapter, limit):
        self.inner, self.limit, self.sizes = adapter.outputs, limit, []
        adapter.outputs = self

    def __call__(self, rows, kind="logit", min_rows=0):
        self.sizes.append(len(rows))
        if len(rows) > self.limit:
            raise oom()
        return self.inner(rows, kind, min_rows)


def test_engine_backs_off_without_changing_a_value(linear_task):
    from helpers import fixed_explanations
    from xbench.metrics.base import Metric
    from xbench.metrics.scoring import score_explanations

    attrs = [np.arange(ex.n_features, 0, -1.0) for ex in linear_task.examples]
    metrics = [Metric.registry.get(n)() for n in ("comprehensiveness", "deletion_auc", "insertion_auc")]
    plain = score_explanations(linear_task, [fixed_explanations(linear_task, attrs)], metrics,
                               engine=linear_task.engine(batch_size=64))[0]
    task = replace(linear_task, model=linear_task.model.with_model(linear_task.model.model))
    task.model.runtime = Runtime()
    wrapper = OOMAbove(task.model, 3)
    metrics = [Metric.registry.get(n)() for n in ("comprehensiveness", "deletion_auc", "insertion_auc")]
    backed = score_explanations(task, [fixed_explanations(task, attrs)], metrics, engine=task.engine(batch_size=64))[0]
    for a, b in zip(plain.results, backed.results):
        np.testing.assert_array_equal(a.values, b.values)  # bit for bit
    assert max(s for s in wrapper.sizes[1:]) > 0 and task.model.runtime.backoffs[0]["where"] == "engine"
    assert task.model.runtime.backoffs[-1]["to"] <= 3


def test_explainer_halves_its_batch_parameter_on_out_of_memory(linear_task):
    from xbench.explainers.base import Explainer

    targets = [1] * len(linear_task.examples)
    ref = Explainer.registry.get("integrated_gradients")(internal_batch_size=8).explain(linear_task, linear_task.examples,
                                                                                       targets)
    task = replace(linear_task, model=linear_task.model.with_model(linear_task.model.model))
    task.model.runtime = Runtime()
    forward = task.model.grad_forward

    def guarded(probability):
        f = forward(probability)

        def g(x, *rest):
            if x.shape[0] > 2:
                raise oom()
            return f(x, *rest)
        return g

    task.model.grad_forward = guarded
    ig = Explainer.registry.get("integrated_gradients")(internal_batch_size=8)
    got = ig.explain(task, task.examples, targets)
    assert ig.p["internal_batch_size"] == 2
    assert task.model.runtime.backoffs[:2] == [
        {"where": "explainer integrated_gradients: internal_batch_size", "from": 8, "to": 4},
        {"where": "explainer integrated_gradients: internal_batch_size", "from": 4, "to": 2}]
    for a, b in zip(ref.attributions, got.attributions):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)  # the same sum, taken in smaller chunks


def test_oom_backoff_is_recorded_in_the_manifest(tmp_path, monkeypatch):
    from helpers import LINEAR_TASK
    from xbench.features.text import TextClassifier
    from xbench.run.config import build_config
    from xbench.run.runner import Runner

    real = TextClassifier.outputs

    def outputs(self, rows, kind="logit", min_rows=0):
        if len(rows) > 4:
            raise oom()
        return real(self, rows, kind, min_rows)

    cfg = build_config([LINEAR_TASK], ["comprehensiveness", "sufficiency"], ["occlusion"], seed=0)
    Runner(cfg, tmp_path / "ok", progress=False, log=lambda m: None).run()
    monkeypatch.setattr(TextClassifier, "outputs", outputs)
    Runner(cfg, tmp_path / "oom", progress=False, log=lambda m: None).run()
    m = json.loads((tmp_path / "oom" / "manifest.json").read_text())
    assert m["runtime"]["oom_backoffs"] and m["runtime"]["device"] == "cpu"
    a = (tmp_path / "ok" / "scores.csv").read_text().splitlines()
    b = (tmp_path / "oom" / "scores.csv").read_text().splitlines()
    assert [r for r in a if ",seconds," not in r] == [r for r in b if ",seconds," not in r]


def test_reduced_precision_runs_and_is_recorded(tmp_path):
    from helpers import LINEAR_TASK
    from xbench.run.config import build_config
    from xbench.run.runner import Runner

    cfg = build_config([LINEAR_TASK], ["comprehensiveness"], ["occlusion", "saliency"], seed=0,
                       runtime={"dtype": "bfloat16"})
    Runner(cfg, tmp_path / "bf16", progress=False, log=lambda m: None).run()
    m = json.loads((tmp_path / "bf16" / "manifest.json").read_text())
    assert m["runtime"]["dtype"] == "bfloat16"
    assert "bfloat16" not in json.dumps(m["config"])  # where it ran is not what it computes: same config hash


def test_peak_memory_sees_an_allocation_of_known_size():
    with PeakMemory() as m:
        a = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        a[::512] = 2.0
        del a
    if np.isnan(m.mib):
        pytest.skip("this system cannot reset the peak resident set size (/proc/self/clear_refs)")
    assert 60 <= m.mib <= 80
    with PeakMemory() as small:
        pass
    assert small.mib < 8


def test_cuda_batch_size_fills_half_the_free_memory(monkeypatch):
    rt = Runtime("cuda:0")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev=None: (8 * 2**30, 16 * 2**30))
    assert rt.auto_batch_size(256, bytes_per_row=2**20) == 4096  # 4 GiB / 1 MiB, at most 16 x the default
    assert rt.auto_batch_size(256, bytes_per_row=2**24) == 256
    assert rt.auto_batch_size(256, bytes_per_row=2**40) == 1
    assert Runtime("cuda:0", batch_size=7).auto_batch_size(256, 2**20) == 7  # a given size wins
    assert Runtime("cpu").auto_batch_size(256, 2**20) == 256  # the CPU keeps the adapter's default
