"""The shared perturbation engine: every perturbed input a run's metrics ask for, evaluated once.

Metrics do not call the model. They submit keep-masks over an example's features to the
:class:`PerturbationEngine`, which turns them into model input rows through the task's
:class:`~xbench.features.protocol.Removal` policy, drops every input it has already seen in this run
(across metrics and explainers: the full input and the empty input recur constantly), sorts the rest
by length and evaluates them in batches on the adapter's device. A batch that runs out of memory is
halved and retried (:meth:`xbench.core.device.Runtime.backoff`, recorded in the manifest); an input's
output does not depend on the batch it is in.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from xbench.core.progress import Counter

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime
    from xbench.features.protocol import Example, ModelAdapter, Removal


class PerturbationEngine:
    """Deduplicated, length-sorted, batched evaluation of perturbed inputs for one task.

    ``submit`` returns integer handles; after ``run``, ``probs(handles)`` gives the
    softmax outputs. ``n_requested`` counts submitted rows, ``n_unique`` distinct
    inputs, and the model adapter's ``n_forward`` grows by exactly ``n_unique``.
    """

    #: every forward batch of the engine has at least this many rows (small ones are filled up): below
    #: about 32 rows the CPU kernels take other paths, and a row's output would depend on how many
    #: rows it was batched with, so a resumed or sharded run (other batches) would differ in the last
    #: bits. Measured on the default models: outputs are bit for bit the same for any batch of 32 to
    #: 512 rows, and differ by up to 1.7e-6 below (benchmarks/README.md).
    MIN_ROWS = 32

    def __init__(self, model: "ModelAdapter", removal: "Removal", batch_size: int | None = None) -> None:
        self.model = model
        self.removal = removal
        self.batch_size = batch_size or model.batch_size
        self._index: dict[bytes, int] = {}
        self._rows: list = []
        self._len: list[int] = []  # sequence length of each row (0 for dense inputs), for sorting
        self._logits = np.zeros((0, model.num_labels), dtype=np.float32)
        self._probs = self._logits
        self._n_done = 0  # rows evaluated so far
        self._sized, self._probe_rows = False, 0  # CUDA: batch size set from free memory once
        self.n_requested = 0
        #: per-run memo for values derived from model outputs that do not depend on the explainer
        #: (e.g. an example's normalised-AOPC bounds), shared by every metric and explainer
        self.memo: dict = {}

    @property
    def n_unique(self) -> int:
        return len(self._rows)

    def submit(self, ex: "Example", keep: np.ndarray) -> np.ndarray:
        """Handles for the inputs ``ex`` becomes under each keep-mask row (m, F)."""
        rows, keys = self.removal.apply(ex, keep)
        index, store, lens = self._index, self._rows, self._len
        handles = np.empty(len(rows), dtype=np.int64)
        for i, key in enumerate(keys):
            h = index.get(key)
            if h is None:
                h = index[key] = len(store)
                row = rows[i]
                store.append(row)
                lens.append(len(row[0]) if isinstance(row[0], np.ndarray) else 0)
            handles[i] = h
        self.n_requested += len(rows)
        return handles

    def run(self, progress: bool = False) -> None:
        """Evaluate every input submitted since the last run, shortest first."""
        import torch

        start = self._n_done
        pending = range(start, len(self._rows))
        if not pending:
            return
        order = sorted(pending, key=self._len.__getitem__)
        if len(self._rows) > len(self._logits):  # grow by doubling: appends stay amortised O(1)
            cap = max(len(self._rows), 2 * len(self._logits), 1024)
            for name in ("_logits", "_probs"):
                grown = np.zeros((cap, self.model.num_labels), dtype=np.float32)
                grown[:start] = getattr(self, name)[:start]
                setattr(self, name, grown)
        runtime = getattr(self.model, "runtime", None)
        with Counter("forward passes", len(order) if progress else 0, "input") as bar:
            if runtime is not None and runtime.cuda and runtime.batch_size is None and not self._sized:
                order = self._size_batches(order, runtime)
                bar.update(self._probe_rows)
            b = 0
            while b < len(order):
                def forward(size: int, b: int = b) -> list[int]:
                    idx = order[b:b + size]
                    self._logits[idx] = self.model.outputs([self._rows[h] for h in idx], "logit", self.MIN_ROWS)
                    return idx

                if runtime is None:
                    idx = forward(self.batch_size)
                else:
                    idx, self.batch_size = runtime.backoff(forward, self.batch_size, "engine")
                b += len(idx)
                bar.update(len(idx))
        end = len(self._rows)
        to_probs = getattr(self.model, "probabilities", None)  # a causal LM's columns are log-probabilities
        self._probs[start:end] = (to_probs(self._logits[start:end]) if to_probs is not None else
                                  torch.softmax(torch.from_numpy(self._logits[start:end]), -1).numpy())
        self._n_done = end

    def _size_batches(self, order: list[int], runtime: "Runtime") -> list[int]:
        """On CUDA, the batch size from free memory: the longest rows (the most memory per row) are
        evaluated first as a probe, the allocator's peak per probe row sets how many rows fill half
        the free memory (:meth:`Runtime.auto_batch_size`). Returns the rows left to evaluate."""
        import torch

        probe = order[-min(32, len(order)):]
        dev = runtime.torch_device
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        self._logits[probe] = self.model.outputs([self._rows[h] for h in probe], "logit", self.MIN_ROWS)
        torch.cuda.synchronize(dev)
        per_row = max(1.0, (torch.cuda.max_memory_allocated(dev) - base) / len(probe))
        self.batch_size = runtime.auto_batch_size(self.batch_size, per_row)
        runtime.sized = {"engine_batch_size": self.batch_size, "probe_bytes_per_row": int(per_row)}
        self._sized, self._probe_rows = True, len(probe)
        return order[:-len(probe)]

    def _check(self, handles: np.ndarray) -> None:
        if len(handles) and np.max(handles) >= self._n_done:
            raise RuntimeError("engine.run() must be called before reading results")

    def probs(self, handles: np.ndarray) -> np.ndarray:
        """Softmax outputs of the inputs behind ``handles``."""
        self._check(handles)
        return self._probs[handles]

    def logits(self, handles: np.ndarray) -> np.ndarray:
        """Logits of the inputs behind ``handles``."""
        self._check(handles)
        return self._logits[handles]

