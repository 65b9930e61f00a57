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


def shapley_truth(w: np.ndarray, pairs: list, mu: np.ndarray, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each feature's Shapley value in the generator's log-odds at ``x`` from the baseline ``v``:
    w_j (x_j − v_j), plus ½ β (x_i − v_i) [(x_j − μ_j) + (v_j − μ_j)] for each pair (i, j, β) and
    symmetrically for j (see :class:`SyntheticLinear`)."""
    x, v = np.asarray(x, dtype=np.float64), np.asarray(v, dtype=np.float64)
    out = np.asarray(w, dtype=np.float64) * (x - v)
    for i, j, beta in pairs:
        out[i] += 0.5 * beta * (x[i] - v[i]) * ((x[j] - mu[j]) + (v[j] - mu[j]))
        out[j] += 0.5 * beta * (x[j] - v[j]) * ((x[i] - mu[i]) + (v[i] - mu[i]))
    return out


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

    Interactions (``interactions`` = K > 0): K disjoint pairs (i, j) of features that are not
    informative alone, drawn at random, each with a coefficient β = s · U(1, 2.5) (random sign s),
    add β (x_i − μ_i)(x_j − μ_j) to the log-odds: a feature of a pair matters only through its
    partner. The gold rationale then includes the paired features. The true attribution is the
    Shapley value of each feature in the log-odds, from the example's baseline v (its removal
    policy's values): for the linear part w_j (x_j − v_j) as above, and for a pair term
    g = β (x_i − μ_i)(x_j − μ_j), with two players (the other features do not enter g),

        φ_i = ½ [g(x_i, x_j) − g(v_i, x_j)] + ½ [g(x_i, v_j) − g(v_i, v_j)]
            = ½ β (x_i − v_i) [(x_j − μ_j) + (v_j − μ_j)],

    and φ_i + φ_j = g(x) − g(v) (efficiency). Integrated Gradients from v equals it exactly (g is
    quadratic along the straight path); leave-one-out occlusion gives β (x_i − v_i)(x_j − μ_j)
    instead, and gradient × input and saliency differ too, so the exact methods no longer tie.
    Pairs go into ``Splits.info['truth_interactions']`` as ``[i, j, β]``.
    """

    name = "synthetic-linear"
    params = {"n_train": 2000, "n_test": 500, "n_features": 10, "n_informative": 4, "correlation": 0.3,
              "label_noise": 0.0, "intercept": 0.0, "interactions": 0}

    def _check(self) -> dict[str, Any]:
        p, where = self.p, f"{self.task_path}: field 'dataset.params."
        for k in ("n_train", "n_test", "n_features", "n_informative"):
            if not isinstance(p[k], int) or isinstance(p[k], bool) or p[k] < 1:
                raise XBenchError(f"{where}{k}' must be a positive integer; got {p[k]!r}")
        f = p["n_features"]
        if p["n_informative"] > f:
            raise XBenchError(f"{where}n_informative' must be at most n_features ({f}); got {p['n_informative']}")
        k_int = p["interactions"]
        if not isinstance(k_int, int) or isinstance(k_int, bool) or k_int < 0 or \
                2 * k_int > f - p["n_informative"]:
            raise XBenchError(f"{where}interactions' must be an integer from 0 to (n_features − n_informative) / 2 "
                              f"(pairs of features not informative alone); got {k_int!r}")
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

    def pairs(self, seed: int, w: np.ndarray) -> list[tuple[int, int, float]]:
        """The interaction pairs (i, j, β): disjoint, among the features with w = 0 (none by default)."""
        k = self.p["interactions"]
        if not k:
            return []
        rng = np_rng(self.name, "interactions", seed)
        free = rng.permutation(np.flatnonzero(w == 0))[:2 * k]
        beta = rng.choice([-1.0, 1.0], size=k) * rng.uniform(1.0, 2.5, size=k)
        return [(int(min(free[2 * q], free[2 * q + 1])), int(max(free[2 * q], free[2 * q + 1])), float(beta[q]))
                for q in range(k)]

    def load(self, seed: int) -> Splits:
        mu, w, b, cov = self.generator(seed)  # validates the parameters
        p = self.p
        pairs = self.pairs(seed, w)
        n = p["n_train"] + p["n_test"]
        x = np_rng(self.name, "x", seed).multivariate_normal(mu, cov, size=n, method="cholesky")
        z = x @ w + b + sum(beta * (x[:, i] - mu[i]) * (x[:, j] - mu[j]) for i, j, beta in pairs)
        y = (z > 0).astype(np.int64)
        flip = np_rng(self.name, "noise", seed).random(n) < p["label_noise"]
        y = np.where(flip, 1 - y, y)
        x = x.astype(np.float32)
        train_mean = x[:p["n_train"]].mean(0, dtype=np.float64)
        mask = (w != 0).astype(np.int8)
        for i, j, _ in pairs:
            mask[i] = mask[j] = 1

        def rec(i: int, part: str) -> ArrayRecord:
            return ArrayRecord(f"{part}{i}", x[i], int(y[i]), mask=mask,
                               truth=shapley_truth(w, pairs, mu, x[i], train_mean),
                               meta={"label_flipped": bool(flip[i])})

        train = [rec(i, "tr") for i in range(p["n_train"])]
        test = [rec(i, "te") for i in range(p["n_train"], n)]
        info = {"feature_names": [f"x{j}" for j in range(len(w))], "truth_weights": w.tolist(),
                "truth_intercept": b, "informative": np.flatnonzero(w).tolist(), "means": mu.tolist(),
                "correlation": p["correlation"], "truth_interactions": [list(q) for q in pairs],
                "generator_test_accuracy": float(np.mean((z[p["n_train"]:] > 0) == y[p["n_train"]:]))}
        return Splits(train, test, ["negative", "positive"], info)
