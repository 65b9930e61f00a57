"""Feature removal in token-id space, and the shared perturbation engine.

Inputs are never decoded and re-tokenised: a removed feature's tokens are replaced
in the id sequence according to the task's replacement policy, and special tokens
(``feature_ids == -1``) are never touched:

- ``mask``: ids become ``[MASK]``;
- ``unk``: ids become ``[UNK]``;
- ``pad``: ids become ``[PAD]`` and their attention-mask entries 0;
- ``delete``: the tokens are dropped and the sequence closes up.

Metrics do not call the model. They submit keep-masks over an example's features
to the :class:`PerturbationEngine`, which materialises them, drops every input it
has already seen in this run (across metrics and explainers: the full input and the
empty input recur constantly), sorts the rest by length and evaluates them in
batches.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .models.adapter import TextClassifier
    from .task import TextExample

Row = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]
POLICIES = ("mask", "pad", "unk", "delete")


def materialize(ex: "TextExample", keep: np.ndarray, policy: str, replacement_id: int) -> list[Row]:
    """Perturbed ``(ids, attention, token_types)`` rows for each row of ``keep`` (m, F) bool."""
    keep = np.asarray(keep, dtype=bool).reshape(-1, ex.n_features)
    cols, fids = ex.movable
    kept = keep[:, fids]  # (m, movable tokens): is each movable token's feature kept?
    tt = ex.token_type_ids
    if policy == "delete":
        pos_keep = np.ones((len(keep), len(ex.input_ids)), dtype=bool)
        pos_keep[:, cols] = kept
        return [(ex.input_ids[k], np.ones(int(k.sum()), dtype=np.int64), None if tt is None else tt[k])
                for k in pos_keep]
    if policy not in POLICIES:
        raise ValueError(f"unknown replacement policy {policy!r}; valid: {', '.join(POLICIES)}")
    ids = np.repeat(ex.input_ids[None, :], len(keep), axis=0)
    ids[:, cols] = np.where(kept, ex.input_ids[cols], replacement_id)
    if policy == "pad":
        att = np.ones_like(ids)
        att[:, cols] = kept
        return [(ids[i], att[i], tt) for i in range(len(ids))]
    ones = ex.ones
    return [(row, ones, tt) for row in ids]


class PerturbationEngine:
    """Deduplicated, length-sorted, batched evaluation of perturbed inputs for one task.

    ``submit`` returns integer handles; after ``run``, ``probs(handles)`` gives the
    softmax outputs. ``n_requested`` counts submitted rows, ``n_unique`` distinct
    inputs, and the model adapter's ``n_forward`` grows by exactly ``n_unique``.
    """

    def __init__(self, model: "TextClassifier", policy: str, batch_size: int | None = None) -> None:
        self.model = model
        self.policy = policy
        repl = model.replacement_ids.get(policy)
        self.replacement_id = None if repl is None else int(repl)
        self.batch_size = batch_size or model.batch_size
        self._index: dict[bytes, int] = {}
        self._rows: list = []
        self._len: list[int] = []  # sequence length of each row (0 for dense inputs), for sorting
        self._logits = np.zeros((0, model.num_labels), dtype=np.float32)
        self._probs = self._logits
        self._n_done = 0  # rows evaluated so far
        self.n_requested = 0
        #: per-run memo for values derived from model outputs that do not depend on the explainer
        #: (e.g. an example's normalised-AOPC bounds), shared by every metric and explainer
        self.memo: dict = {}

    @property
    def n_unique(self) -> int:
        return len(self._rows)

    def submit(self, ex: "TextExample", keep: np.ndarray) -> np.ndarray:
        """Handles for the inputs ``ex`` becomes under each keep-mask row (m, F).

        Text keys are the token ids (and token types, if any). Attention needs no place in
        them: it is 1 everywhere except where the pad policy put [PAD], which the ids show, as
        examples are never padded. Dense keys are (example id, packed keep-mask)."""
        rows, keys = ex.perturb(keep, self.policy, self.replacement_id)
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
        batches = range(0, len(order), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="forward passes", unit="batch", leave=False)
        for b in batches:
            idx = order[b:b + self.batch_size]
            self._logits[idx] = self.model.outputs([self._rows[h] for h in idx], "logit")
        end = len(self._rows)
        self._probs[start:end] = torch.softmax(torch.from_numpy(self._logits[start:end]), -1).numpy()
        self._n_done = end

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
