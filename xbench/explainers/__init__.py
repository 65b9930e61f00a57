"""Explainers: one registered class each, with its metadata on the class.

Every explainer returns one score per *feature* (see :class:`~xbench.task.TextExample`)
for each example, explaining the target class's logit (or probability: the task's
``explained_output``).
Conventions that change numbers are recorded with every result:

- gradient methods attribute the word-embedding input (``inputs_embeds``) and reduce
  captum's per-dimension attribution over the embedding dimension by **sum** (the
  reduction that keeps Integrated Gradients' completeness); ``reduce: l2`` is available;
- token scores pool into word features by the task's ``pooling`` rule (sum by default);
- baselines are the embeddings of the task's replacement token at every non-special
  position (``[PAD]`` for the ``delete`` policy), so a gradient method's reference input
  is the same "feature removed" input the faithfulness metrics use.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..registry import Registered, Registry
from ..seeding import derive_seed

if TYPE_CHECKING:  # pragma: no cover
    from ..task import Task, TextExample

FAMILIES = ("gradient", "perturbation", "attention", "control")


@dataclass
class Explanations:
    """Attributions for a list of examples, with the measured cost of each."""

    explainer: str
    params: dict[str, Any]
    example_ids: list[str]
    attributions: list[np.ndarray]
    seconds: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        from ..io import atomic_write

        lengths = np.array([len(a) for a in self.attributions], dtype=np.int64)
        flat = np.concatenate(self.attributions) if self.attributions else np.zeros(0)

        def write(f: Any) -> None:
            np.savez(f, lengths=lengths, flat=flat.astype(np.float64), seconds=self.seconds,
                     forward=self.forward, backward=self.backward,
                     ids=np.array(self.example_ids, dtype=str))

        atomic_write(path, write, mode="wb")

    @classmethod
    def load(cls, path: Path, explainer: str, params: dict, meta: dict) -> "Explanations":
        with np.load(path, allow_pickle=False) as z:
            splits = np.cumsum(z["lengths"])[:-1]
            return cls(explainer, params, [str(i) for i in z["ids"]], list(np.split(z["flat"], splits)),
                       z["seconds"], z["forward"], z["backward"], {**meta, "cache": "hit"})


class Explainer(Registered):
    """Base class. Subclasses set the metadata below and implement ``attribute``."""

    registry: ClassVar[Registry["Explainer"]] = Registry("explainer")
    family: ClassVar[str] = "control"
    #: what the method needs from the model: 'gradients', 'attention'
    needs: ClassVar[frozenset[str]] = frozenset()
    stochastic: ClassVar[bool] = False
    #: 'tokens' if ``attribute`` scores token positions (text) or input elements (images, tabular),
    #: then pooled into features; else 'features'
    scores: ClassVar[str] = "features"
    #: the task modalities the method applies to
    modalities: ClassVar[frozenset[str]] = frozenset({"text", "image", "tabular"})

    def applies_to(self, task: "Task") -> bool:
        return task.spec.modality in self.modalities

    def attribute(self, task: "Task", ex: "TextExample", target: int, seed: int) -> np.ndarray:
        raise NotImplementedError

    def conventions(self, task: "Task") -> dict[str, Any]:
        c = {"explained_output": f"{task.spec.explained_output} of the target class",
             "replacement": task.spec.replacement}
        text = task.spec.modality == "text"
        if self.scores == "tokens" and (task.spec.granularity == "words" or not text):
            c["pooling"] = task.spec.pooling if text else "sum over a feature's input elements"
        if self.family == "gradient" and text:
            c["embedding_reduction"] = self.p.get("reduce", "sum")
        return c

    def explain(self, task: "Task", examples: list["TextExample"], targets: list[int], seed: int = 0,
                progress: bool = False, extra_seed: tuple = ()) -> Explanations:
        """Attributions over features for each example, timing and counting passes per example.

        Example i's randomness is seeded from (task, explainer, example id, seed, *extra_seed).
        """
        from tqdm.auto import tqdm

        n = len(examples)
        attrs, secs = [], np.zeros(n)
        fwd, bwd = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        it = tqdm(examples, desc=self.name, unit="ex", leave=False) if progress else examples
        for i, ex in enumerate(it):
            f0, b0 = task.model.counts()
            t0 = time.perf_counter()
            s = np.asarray(self.attribute(task, ex, int(targets[i]),
                                          derive_seed(task.name, self.name, "explain", ex.id, seed, *extra_seed)),
                           dtype=np.float64)
            if self.scores == "tokens":
                s = pool(ex, s, task.spec.pooling if task.spec.modality == "text" else "sum")
            secs[i] = time.perf_counter() - t0
            f1, b1 = task.model.counts()
            fwd[i], bwd[i] = f1 - f0, b1 - b0
            if s.shape != (ex.n_features,):
                raise RuntimeError(f"explainer {self.name} returned shape {s.shape} for example {ex.id}, "
                                   f"expected ({ex.n_features},)")
            attrs.append(s)
        return Explanations(self.name, dict(self.p), [ex.id for ex in examples], attrs, secs, fwd, bwd,
                            {"conventions": self.conventions(task), "cache": "miss"})


def pool(ex: "TextExample", token_scores: np.ndarray, how: str = "sum") -> np.ndarray:
    """Pool per-token scores into per-feature scores (sum, mean or max over a feature's tokens)."""
    m = ex.feature_ids >= 0
    fid, vals = ex.feature_ids[m], np.asarray(token_scores, dtype=np.float64)[m]
    out = np.zeros(ex.n_features)
    if how == "max":
        out.fill(-np.inf)
        np.maximum.at(out, fid, vals)
        return out
    np.add.at(out, fid, vals)
    if how == "mean":
        out /= np.bincount(fid, minlength=ex.n_features)
    return out


from . import control, gradient, perturbation, attention, cam  # noqa: E402,F401  (register built-ins)
