"""Tabular dataset sources: rows of numbers, one feature per column.

- ``breast-cancer``: scikit-learn's bundled Wisconsin diagnostic breast cancer data (569 rows,
  30 features, ships with sklearn: offline). A seeded stratified split
  (``sklearn.model_selection.train_test_split``), then every column is standardised with the
  TRAIN split's mean and standard deviation (``sklearn.preprocessing.StandardScaler`` fitted
  on the training rows only), so nothing about the test rows leaks into the inputs or into the
  ``mean`` replacement baseline. No gold rationale, no true attribution.
- ``synthetic-linear``: rows from a known linear model, so every example has a gold rationale
  and a true attribution (see :class:`SyntheticLinear`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from xbench.core.errors import XBenchError
from xbench.core.seeding import derive_seed, np_rng
from xbench.data.base import ArrayRecord, DatasetSource, Splits


class BreastCancer(DatasetSource):
    """Wisconsin diagnostic breast cancer (``sklearn.datasets.load_breast_cancer``), standardised
    with the training split's statistics. Labels as sklearn: 0 = malignant, 1 = benign."""

    name = "breast-cancer"
    params = {"test_size": 0.25}

    def size(self) -> str:
        n_test = int(np.ceil(569 * float(self.p["test_size"])))
        return f"{569 - n_test}/{n_test}"

    def load(self, seed: int) -> Splits:
        from sklearn.datasets import load_breast_cancer
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        ts = self.p["test_size"]
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not 0 < ts < 1:
            raise XBenchError(f"{self.task_path}: field 'dataset.params.test_size' must be in (0, 1); got {ts!r}")
        data = load_breast_cancer()
        x, y = data.data.astype(np.float64), data.target.astype(np.int64)
        idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=ts, stratify=y,
                                          random_state=derive_seed(self.name, "split", seed) % 2**32)
        scaler = StandardScaler().fit(x[idx_tr])  # train statistics only
        z = scaler.transform(x).astype(np.float32)

        def records(idx: np.ndarray) -> list[ArrayRecord]:
            return [ArrayRecord(f"bc{i}", z[i], int(y[i]), meta={"row": int(i)}) for i in idx]

        info = {"feature_names": [str(f) for f in data.feature_names],
                "standardisation": {"mean": scaler.mean_.tolist(), "std": scaler.scale_.tolist(),
                                    "fitted_on": "train"}}
        return Splits(records(idx_tr), records(idx_te), [str(n) for n in data.target_names], info)


class SyntheticLinear(DatasetSource):
    """Gaussian rows labelled by a known sparse linear model (after OpenXAI's synthetic data idea:
    a generator whose relevant features are known).

    Generator, all draws from ``np_rng('synthetic-linear', part, seed)``:

    - means μ_j ~ U(−1, 1); covariance Σ = (1 − ρ) I + ρ 11ᵀ (unit variances, every pair of
      features correlated ``correlation`` = ρ; positive definite for −1/(F−1) < ρ < 1);
    - weights: ``n_informative`` features chosen at random get w_j = s_j · m_j with a random sign
      s_j and magnitude m_j ~ U(0.5, 2); the other features have w_j = 0;
    - x ~ N(μ, Σ); log-odds z(x) = w·(x − μ) + ``intercept`` = w·x + b with b = intercept − w·μ;
      y = 1[z(x) > 0], then each label flipped with probability ``label_noise``.

    Gold rationale (``ArrayRecord.mask``): the informative features, w_j ≠ 0.

    True attribution: the linear log-odds is additive, so the exact effect of replacing x_j by a
    baseline value b_j on z is w_j (x_j − b_j): that is each feature's Shapley value, occlusion
    and Integrated Gradients of z from the baseline (all coincide for a linear function). It
    depends on the baseline, which the task's replacement policy fixes per example (``mean``:
    training means; ``marginal``: a draw per column from the training rows), so the coefficients
    go into ``Splits.info['truth_weights']`` and :func:`xbench.features.tabular.TabularModality.encode` sets every
    example's ``truth`` to w ⊙ (x − baseline) with that example's own baseline.
    ``ArrayRecord.truth`` here is w ⊙ (x − training mean), the ``mean``-policy value.
    The truth is on the log-odds of class 1; the ground-truth metrics negate it to explain class 0
    (:mod:`xbench.metrics.ground_truth`).
    """

    name = "synthetic-linear"
    params = {"n_train": 2000, "n_test": 500, "n_features": 10, "n_informative": 4, "correlation": 0.3,
              "label_noise": 0.0, "intercept": 0.0}

    def _check(self) -> dict[str, Any]:
        p, where = self.p, f"{self.task_path}: field 'dataset.params."
        for k in ("n_train", "n_test", "n_features", "n_informative"):
            if not isinstance(p[k], int) or isinstance(p[k], bool) or p[k] < 1:
                raise XBenchError(f"{where}{k}' must be a positive integer; got {p[k]!r}")
        f = p["n_features"]
        if p["n_informative"] > f:
            raise XBenchError(f"{where}n_informative' must be at most n_features ({f}); got {p['n_informative']}")
        rho = p["correlation"]
        if not isinstance(rho, (int, float)) or not (-1 / max(1, f - 1) < rho < 1):
            raise XBenchError(f"{where}correlation' must be in (−1/(n_features−1), 1) for a valid covariance; "
                              f"got {rho!r}")
        if not isinstance(p["label_noise"], (int, float)) or not 0 <= p["label_noise"] < 0.5:
            raise XBenchError(f"{where}label_noise' must be in [0, 0.5); got {p['label_noise']!r}")
        return p

    def generator(self, seed: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """(μ, w, b, Σ) of the generator: log-odds z(x) = w·x + b."""
        p = self._check()
        f, k = p["n_features"], p["n_informative"]
        mu = np_rng(self.name, "mean", seed).uniform(-1.0, 1.0, f)
        rng = np_rng(self.name, "weights", seed)
        w = np.zeros(f)
        informative = np.sort(rng.choice(f, size=k, replace=False))
        w[informative] = rng.choice([-1.0, 1.0], size=k) * rng.uniform(0.5, 2.0, size=k)
        cov = (1 - p["correlation"]) * np.eye(f) + p["correlation"] * np.ones((f, f))
        return mu, w, float(p["intercept"] - w @ mu), cov

    def load(self, seed: int) -> Splits:
        mu, w, b, cov = self.generator(seed)  # validates the parameters
        p = self.p
        n = p["n_train"] + p["n_test"]
        x = np_rng(self.name, "x", seed).multivariate_normal(mu, cov, size=n, method="cholesky")
        y = (x @ w + b > 0).astype(np.int64)
        flip = np_rng(self.name, "noise", seed).random(n) < p["label_noise"]
        y = np.where(flip, 1 - y, y)
        x = x.astype(np.float32)
        train_mean = x[:p["n_train"]].mean(0, dtype=np.float64)
        mask = (w != 0).astype(np.int8)

        def rec(i: int, part: str) -> ArrayRecord:
            return ArrayRecord(f"{part}{i}", x[i], int(y[i]), mask=mask, truth=w * (x[i] - train_mean),
                               meta={"label_flipped": bool(flip[i])})

        train = [rec(i, "tr") for i in range(p["n_train"])]
        test = [rec(i, "te") for i in range(p["n_train"], n)]
        info = {"feature_names": [f"x{j}" for j in range(len(w))], "truth_weights": w.tolist(),
                "truth_intercept": b, "informative": np.flatnonzero(w).tolist(), "means": mu.tolist(),
                "correlation": p["correlation"],
                "generator_test_accuracy": float(np.mean((x[p["n_train"]:] @ w + b > 0) == y[p["n_train"]:]))}
        return Splits(train, test, ["negative", "positive"], info)
