"""Explanations from elsewhere: a plain function as an explainer, and precomputed attributions.

- :func:`from_callable` makes an :class:`~xbench.explainers.base.Explainer` of a function
  ``fn(inputs)`` or ``fn(inputs, seed)`` taking :class:`~xbench.features.protocol.AttributionInputs`
  and returning one score per feature (or, with ``scores="tokens"``, per input position). The class
  is registered under ``fn.__name__``; a function defined in an importable module is also reachable
  as ``"pkg.module:function"`` wherever an explainer name goes (CLI, suites, reproduce).
- ``precomputed:<label>`` explainers return attributions computed by another tool, looked up by
  example id in a content-addressed file (:func:`store_precomputed`; ``params: {sha256: ...}``)
  under the xbench cache. They cannot explain other inputs, so stability and sanity metrics,
  which explain perturbed inputs or randomised models again, do not apply to them.

For text, a precomputed vector may have one score per feature or one per whitespace word of the
example's text (then the words the tokenizer kept are taken, in order); for images one per pixel
(an (H, W) array is flattened); for tables one per column.
"""
from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from xbench.core.cache import cache_dir
from xbench.core.errors import XBenchError
from xbench.core.io import atomic_write
from xbench.explainers.base import Explainer

PREFIX = "precomputed"


class CallableExplainer(Explainer):
    """Base of the classes :func:`from_callable` makes."""

    family = "custom"
    fn: Callable[..., Any]
    takes_seed = False

    def attribute(self, inputs: Any, seed: int) -> Any:
        fn = type(self).fn
        out = fn(inputs, seed) if self.takes_seed else fn(inputs)
        if hasattr(out, "detach"):  # a captum attribution over the inputs: one score per feature
            out = inputs.to_features(out) if self.scores == "features" else out.detach().cpu().double().numpy()
        return np.asarray(out, dtype=np.float64)


def from_callable(fn: Callable[..., Any], name: str | None = None, space: str = "input", scores: str = "features",
                  stochastic: bool = False, needs: Sequence[str] = ()) -> type[Explainer]:
    """An explainer class around ``fn(inputs[, seed])`` (module docstring), registered as ``name``
    (default ``fn.__name__``). ``space``: ``input`` (the model's differentiable input), ``presence``
    (a 0/1 vector over the features) or ``model``; ``scores``: ``features`` or ``tokens``; a returned
    tensor over the inputs is reduced to features."""
    if not callable(fn):
        raise XBenchError(f"explainer {fn!r} is not callable")
    name = name or getattr(fn, "__name__", None)
    if not name or name == "<lambda>":
        raise XBenchError("explainer: a lambda needs a name (xbench.explainers.custom.from_callable(fn, name='...'))")
    try:
        takes_seed = len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        takes_seed = False
    needs = frozenset(needs) | ({"gradients"} if space == "input" else frozenset())
    ns = {"name": name, "fn": staticmethod(fn), "takes_seed": takes_seed, "space": space, "scores": scores,
          "stochastic": stochastic, "needs": needs, "__doc__": (fn.__doc__ or f"{name} (a function)"),
          "__module__": getattr(fn, "__module__", __name__), "__qualname__": getattr(fn, "__qualname__", name)}
    return type(f"Callable_{name}", (CallableExplainer,), ns)


Explainer.registry.wrap = from_callable  # ``pkg.module:function`` names a function too


# -- precomputed attributions ---------------------------------------------------------------------

def store_precomputed(attributions: Mapping[str, Any]) -> str:
    """Write ``{example id: scores}`` into the cache (content-addressed) and return its sha256."""
    ids = [str(k) for k in attributions]
    arrays = [np.asarray(attributions[k], dtype=np.float64).reshape(-1) for k in attributions]
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    flat = np.concatenate(arrays) if arrays else np.zeros(0)
    h = hashlib.sha256()
    for i, a in zip(ids, arrays):
        h.update(i.encode() + b"\x1f" + a.tobytes())
    sha = h.hexdigest()[:32]
    path = cache_dir("precomputed", f"{sha}.npz")
    if not path.exists():
        atomic_write(path, lambda f: np.savez(f, ids=np.array(ids, dtype=str), lengths=lengths, flat=flat), mode="wb")
    return sha


def copy_precomputed(sha: str, folder: Path, into_cache: bool = False) -> Path:
    """Copy a stored file between the cache and ``folder`` (a run's ``inputs/precomputed``): out of the
    cache, or with ``into_cache`` back into it (what ``xbench reproduce`` does on another machine)."""
    import shutil

    cached, kept = cache_dir("precomputed", f"{sha}.npz"), Path(folder) / f"{sha}.npz"
    src, dst = (kept, cached) if into_cache else (cached, kept)
    if src.exists() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return dst


_LOADED: dict[str, dict[str, np.ndarray]] = {}


def load_precomputed(sha: str) -> dict[str, np.ndarray]:
    if sha not in _LOADED:
        path = cache_dir("precomputed", f"{sha}.npz")
        if not path.exists():
            raise XBenchError(f"precomputed attributions {sha} are not in the cache ({path}); store them with "
                              f"xbench.explainers.custom.store_precomputed, or copy the run's inputs/precomputed/")
        with np.load(path, allow_pickle=False) as z:
            parts = np.split(z["flat"], np.cumsum(z["lengths"])[:-1]) if len(z["lengths"]) else []
            _LOADED[sha] = dict(zip((str(i) for i in z["ids"]), parts))
    return _LOADED[sha]


class Precomputed(Explainer):
    """Attributions computed elsewhere, looked up by example id (module docstring)."""

    family = "precomputed"
    space = "model"
    reexplainable = False
    params = {"sha256": None}

    def attribute(self, inputs: Any, seed: int) -> np.ndarray:
        ex = inputs.example
        table = load_precomputed(str(self.p["sha256"]))
        if ex.id not in table:
            raise XBenchError(f"explainer {self.name!r}: no attributions for example {ex.id}")
        a = table[ex.id]
        if len(a) == ex.n_features:
            return a
        words = getattr(ex, "word_index", None)
        if words is not None and len(words) and len(a) > int(np.max(words)):
            return a[words]  # one score per word of the text; the words the tokenizer kept
        raise XBenchError(f"explainer {self.name!r}: example {ex.id} has {len(a)} attributions for "
                          f"{ex.n_features} features")


def _precomputed(label: str) -> type[Explainer]:
    if not label:
        raise XBenchError("explainer 'precomputed:': name the attributions, e.g. precomputed:my_method")
    cls = type(f"Precomputed_{label}", (Precomputed,), {"__doc__": f"precomputed attributions {label!r}"})
    cls.name = f"{PREFIX}:{label}"  # set after the class body: made by the prefix, not auto-registered
    return cls


Explainer.registry.add_prefix(PREFIX, _precomputed, "attributions computed elsewhere, by example id "
                                                    "(xbench.evaluate(explainers={'label': arrays}))")
