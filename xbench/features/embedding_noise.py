"""Noise in word-embedding space for one example, seen alike by every explainer.

Text is discrete, so the continuous-perturbation stability metrics (Yeh et al. 2019; Agarwal et
al. 2022) perturb the *word-embedding rows* of an example's tokens: a temporary, in-place change of
``model.get_input_embeddings().weight`` at those token ids, restored bit for bit on exit (also when
the block raises). Gradient explainers (which embed the ids through that layer and attribute
``inputs_embeds``), perturbation explainers (which pass ids) and attention explainers therefore
all see the same perturbed input, with no explainer-specific code.

What follows from perturbing rows rather than positions (documented, deliberate):

- a token id that occurs twice in the example gets the same noise at both positions;
- special tokens' rows ([CLS], [SEP], ...) and the replacement tokens' rows ([MASK], [PAD],
  [UNK]) are never changed, so a removed feature and a gradient baseline are what they were;
- *any* input containing the perturbed ids, evaluated inside the block, sees the noise. Evaluate
  nothing else there; in particular never run the :class:`~xbench.features.engine.PerturbationEngine`
  inside it, whose results are cached by token ids.

The noise is uniform, ``U[-r, r]`` per dimension of each perturbed row (Quantus's default
``uniform_noise`` for MaxSensitivity/AvgSensitivity), with ``r = radius * (max - min)`` of the
example's embedding matrix (all its positions), the same relative scale SmoothGrad's noise uses
here. The draw is ``torch.rand((rows, dim), generator=g, dtype=float64) * 2r - r`` from a
generator seeded by name (:func:`xbench.core.seeding.torch_gen`), then cast to the weight's dtype.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from xbench.features.text import TextClassifier, TextExample


def weight(model: "TextClassifier") -> torch.Tensor:
    """The word-embedding matrix (vocab, dim) the model reads its ids through."""
    return model.model.get_input_embeddings().weight


def noisy_rows(model: "TextClassifier", ex: "TextExample") -> np.ndarray:
    """Sorted distinct token ids of the example's feature tokens that may be perturbed: never a
    special token's id (the tokenizer's, or any id at a position with feature id -1), never a
    replacement token's id."""
    cols, _ = ex.movable
    ids = np.unique(ex.input_ids[cols])
    fixed = set(int(t) for t in ex.input_ids[ex.feature_ids < 0])
    fixed |= {int(t) for t in getattr(model.tokenizer, "all_special_ids", [])}
    fixed |= {int(t) for t in model.replacement_ids.values() if t is not None}
    return np.array([t for t in ids.tolist() if t not in fixed], dtype=np.int64)


def embedding_range(model: "TextClassifier", ex: "TextExample") -> float:
    """max - min over the example's (unperturbed) word-embedding matrix, all positions."""
    w = weight(model)
    with torch.no_grad():
        e = w[torch.from_numpy(ex.input_ids).to(w.device)]
    return float(e.max() - e.min())


def uniform_noise(n_rows: int, dim: int, r: float, gen: torch.Generator) -> torch.Tensor:
    """(n_rows, dim) float64 noise, uniform in [-r, r]."""
    return torch.rand((n_rows, dim), generator=gen, dtype=torch.float64) * (2 * r) - r


@contextlib.contextmanager
def embedding_noise(model: "TextClassifier", rows: np.ndarray, noise: torch.Tensor) -> Iterator[None]:
    """Add ``noise`` (len(rows), dim) to the embedding rows ``rows`` for the duration of the block.

    The original rows are copied first and written back in ``finally``, so the weights are restored
    exactly, whatever happens inside. ``rows`` must be distinct (as :func:`noisy_rows` returns them).
    """
    w = weight(model)
    idx = torch.as_tensor(np.asarray(rows, dtype=np.int64)).to(w.device)
    if len(torch.unique(idx)) != len(idx):
        raise ValueError("embedding_noise: rows must be distinct")
    with torch.no_grad():  # only around the writes: gradient explainers run inside the block
        saved = w[idx].clone()
    try:
        with torch.no_grad():
            w[idx] = saved + noise.to(device=w.device, dtype=w.dtype)
        yield
    finally:
        with torch.no_grad():
            w[idx] = saved
