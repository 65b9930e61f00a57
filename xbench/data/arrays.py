"""``arrays``: images or table rows from one ``.npz`` file (what the Python API writes for a user's
own arrays; any NumPy user can write one).

Example ``dataset`` block::

    dataset:
      source: arrays
      params:
        file: data/digits.npz     # resolved beside the task file, the CWD, $XBENCH_DATA

The file holds ``x`` (N, C, H, W) images or (N, F) rows and ``y`` (N,) integer labels, and optionally
``ids`` (N,) strings, ``mask`` (N, H, W) or (N, F) 0/1 gold rationales, ``truth`` (N, F) true
attributions, ``label_names`` and ``feature_names`` (string arrays), and ``x_train``/``y_train``: the
rows a tabular baseline (mean, marginal) is computed from (default: the test rows themselves).
"""
from __future__ import annotations

import numpy as np

from xbench.core.errors import XBenchError
from xbench.data.base import ArrayRecord, DatasetSource, Splits


class ArraysFile(DatasetSource):
    """Images or table rows from one ``.npz`` file (module docstring)."""

    name = "arrays"
    params = {"file": None, "n_test": None}

    def locate(self):
        if not self.p["file"]:
            raise XBenchError(f"{self.task_path}: field 'dataset.params.file' is required (an .npz file)")
        return self.data_path(self.p["file"])

    def size(self) -> str:
        return "?" if self.p["n_test"] is None else f"?/{self.p['n_test']}"

    def load(self, seed: int) -> Splits:
        path = self.locate()
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise XBenchError(f"{path}: not a readable .npz file ({e})") from None
        with z:
            for k in ("x", "y"):
                if k not in z.files:
                    raise XBenchError(f"{path}: has no array {k!r} (needs x and y)")
            x, y = np.asarray(z["x"], dtype=np.float32), np.asarray(z["y"])
            if len(x) != len(y) or y.ndim != 1:
                raise XBenchError(f"{path}: x has {len(x)} rows and y shape {y.shape}; need one label per row")
            get = {k: z[k] for k in ("ids", "mask", "truth", "label_names", "feature_names", "x_train", "y_train")
                   if k in z.files}
        ids = [str(i) for i in get["ids"]] if "ids" in get else [str(i) for i in range(len(x))]
        mask, truth = get.get("mask"), get.get("truth")
        n = len(x) if self.p["n_test"] is None else min(len(x), int(self.p["n_test"]))
        test = [ArrayRecord(ids[i], x[i], int(y[i]), None if mask is None else mask[i],
                            None if truth is None else truth[i]) for i in range(n)]
        if "x_train" in get:
            xt, yt = np.asarray(get["x_train"], dtype=np.float32), np.asarray(get["y_train"])
            train = [ArrayRecord(f"train-{i}", xt[i], int(yt[i])) for i in range(len(xt))]
        else:
            train = [ArrayRecord(r.id, r.x, r.label) for r in test]
        labels = [str(s) for s in get["label_names"]] if "label_names" in get else \
            [str(c) for c in range(int(y.max()) + 1 if len(y) else 0)]
        info = {"feature_names": [str(f) for f in get["feature_names"]]} if "feature_names" in get else {}
        return Splits(train, test, labels, info)
