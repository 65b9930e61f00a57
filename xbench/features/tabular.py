"""The tabular modality: rows ``(F,)`` of floats whose features are columns.

Removal policies (the value a removed column takes, fixed per example at encoding):

- ``mean``: the training mean of each column;
- ``marginal``: for each example, one draw per column from the training column's values, seeded per
  (task, example): a sample from the product of the training marginals.

When the dataset knows a linear generator's coefficients w (``Splits.info['truth_weights']``), each
example's true attribution is w * (x - baseline) with its own baseline, plus the Shapley shares of
the generator's pairwise interaction terms where it has them (``Splits.info['truth_interactions']``,
:func:`xbench.data.tabular.shapley_truth`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from xbench.core.errors import XBenchError
from xbench.core.seeding import np_rng
from xbench.data.tabular import shapley_truth
from xbench.features.dense import DenseClassifier, DenseExample, DenseRemoval
from xbench.features.protocol import Modality

if TYPE_CHECKING:  # pragma: no cover
    from xbench.core.device import Runtime

POLICIES = ("mean", "marginal")


class TabularModality(Modality):
    """Table rows classified by a ``torch.nn.Module``: features are columns."""

    name = "tabular"
    replacements = POLICIES
    provides = frozenset({"gradients"})
    noise = "input"

    def removal(self, splits: Any, tokenizer: Any) -> DenseRemoval:
        spec = self.spec
        if not splits.train:
            raise XBenchError(f"{spec.path}: tabular replacement {spec.replacement!r} needs training rows")
        train = np.stack([r.x for r in splits.train]).astype(np.float32)
        mean = train.mean(0)

        def baseline(x: np.ndarray, example_id: str) -> np.ndarray:
            if spec.replacement == "mean":
                return np.asarray(mean, dtype=np.float32)
            # marginal: one draw per column from the training values, seeded per example
            rng = np_rng(spec.name, "marginal", example_id, spec.dataset.seed)
            return np.asarray(train[rng.integers(0, len(train), size=x.shape[0]), np.arange(x.shape[0])],
                              dtype=np.float32)

        what = {"mean": "the training mean of each column",
                "marginal": "one training value per column, drawn per example"}[spec.replacement]
        removal = DenseRemoval(spec.replacement, baseline, what)
        removal.n_columns = train.shape[1]
        return removal

    def encode(self, records: list, splits: Any, tokenizer: Any, removal: DenseRemoval) -> list[DenseExample]:
        names = list(splits.info.get("feature_names") or [f"x{j}" for j in range(removal.n_columns)])
        weights = splits.info.get("truth_weights")
        weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        pairs = [(int(i), int(j), float(b)) for i, j, b in splits.info.get("truth_interactions") or []]
        means = np.asarray(splits.info.get("means") or np.zeros(removal.n_columns), dtype=np.float64)
        out = []
        for r in records:
            x = np.asarray(r.x, dtype=np.float32)
            base = removal.baseline(x, r.id)
            rat = None if r.mask is None else np.asarray(r.mask, dtype=np.int8).reshape(-1)
            truth = None if r.truth is None else np.asarray(r.truth, dtype=np.float64)
            if weights is not None:
                truth = shapley_truth(weights, pairs, means, x, base)
            out.append(DenseExample(r.id, x, np.arange(x.shape[0]), int(r.label), names, rat, base, truth,
                                    dict(r.meta)))
        return out

    def adapter(self, model: Any, tokenizer: Any, splits: Any, runtime: "Runtime") -> DenseClassifier:
        return DenseClassifier(model, len(splits.label_names), runtime=runtime)

    def conventions(self, space: str, scores: str, reduce: str = "sum") -> dict[str, Any]:
        return {"pooling": "sum over a feature's input elements"} if scores == "tokens" else {}

    def view(self, ex: DenseExample) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"values": [round(float(v), 4) for v in ex.x]}
