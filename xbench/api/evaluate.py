"""``xbench.evaluate``: explanations of your own model on your own data, from Python, in one call.

::

    import xbench
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained("path/or/hub-id")
    tokenizer = AutoTokenizer.from_pretrained("path/or/hub-id")
    data = [{"text": "a gripping , moving film", "label": 1, "rationale": [0, 1, 0, 1, 1]}, ...]
    results = xbench.evaluate(model, data, tokenizer=tokenizer, rationale="rationale",
                              explainers=["integrated_gradients", "occlusion", my_function],
                              attributions={"my_tool": precomputed_arrays})
    results.leaderboard            # pandas DataFrame: mean, 95% CI, rank group per (explainer, metric)
    results.save("runs/mine").report()

``model`` is a ``transformers`` sequence classifier with its ``tokenizer`` (text), or a plain
``torch.nn.Module`` mapping float inputs to logits (images ``(N, C, H, W)``, table rows ``(N, F)``).
``data`` is a list of dicts, a pandas DataFrame, a ``datasets.Dataset`` or, for arrays, a tuple
``(X, y)``; field names are given by ``text``/``x``, ``label``, ``rationale`` and ``id``.

What the run needs to be repeated is written into the run directory's ``inputs/``: the data (JSONL
for text, ``.npz`` for arrays), a task file, the model's weights where the model cannot be found
again by name (a Hub id or a local folder is referenced instead), and precomputed attributions. The
model object itself is used for the run; ``xbench reproduce`` later rebuilds it from ``inputs/``
(an ``nn.Module`` class defined in a notebook cannot be re-imported: the manifest says so).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from xbench.api.results import Results
from xbench.core.errors import XBenchError
from xbench.core.io import atomic_write, atomic_write_text


def _rows(data: Any) -> list[dict[str, Any]]:
    """A list of dicts from a list of dicts, a pandas DataFrame or a ``datasets.Dataset``."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        return list(data.to_dict("records"))
    if hasattr(data, "to_list") and hasattr(data, "features"):  # datasets.Dataset
        return list(data.to_list())
    if isinstance(data, Mapping):
        raise XBenchError("data: expected a list of dicts, a DataFrame, a datasets.Dataset or (X, y); got a mapping")
    rows = list(data)
    if rows and not isinstance(rows[0], Mapping):
        raise XBenchError(f"data: row 0 is a {type(rows[0]).__name__}, not a dict of fields")
    return [dict(r) for r in rows]


def _plain(v: Any) -> Any:
    from xbench.data.fields import plain

    return plain(v)


def _is_hf(model: Any) -> bool:
    return hasattr(model, "config") and hasattr(model, "save_pretrained")


def _label_names(rows: list[dict], label: str, given: Sequence[str] | None, model: Any) -> list[str]:
    if given is not None:
        return [str(n) for n in given]
    id2label = getattr(getattr(model, "config", None), "id2label", None)
    if id2label:
        return [str(id2label[i]) for i in range(len(id2label))]
    labels = [r.get(label) for r in rows]
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        return [str(i) for i in range(max(2, int(max(labels)) + 1))]
    return sorted({str(v) for v in labels})


def _text_inputs(inputs: Path, name: str, rows: list[dict], model: Any, tokenizer: Any, fields: dict[str, Any],
                 save_model: bool | str) -> tuple[dict, dict]:
    """(dataset block, model block) of a text task; writes the rows and, where needed, the model."""
    text, label, rationale, ident = fields["text"], fields["label"], fields["rationale"], fields["id"]
    for i, r in enumerate(rows):
        for f in [*([text] if isinstance(text, str) else text), label]:
            if f not in r:
                raise XBenchError(f"data: row {i}: no field {f!r} (set text=/label= to your field names)")
    names = _label_names(rows, label, fields["label_names"], model)
    if not ident:  # explicit ids, so precomputed attributions and reports can name each example
        ident = "xbench_id"
        rows = [{**r, ident: str(i)} for i, r in enumerate(rows)]
    atomic_write_text(inputs / f"{name}.jsonl", "".join(json.dumps(_plain(r), default=str) + "\n" for r in rows))
    params: dict[str, Any] = {"test": f"{name}.jsonl", "text": text, "label": label, "label_names": names,
                              "id": ident}
    if rationale:
        params.update(rationale=rationale, rationale_format=fields["rationale_format"])
    ref = str(getattr(model, "name_or_path", "") or "")
    local = bool(ref) and (Path(ref) / "config.json").is_file()
    if save_model is True or (save_model == "auto" and not local):
        folder = inputs / f"{name}-model"
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        ref = folder.name
    elif local:
        ref = str(Path(ref).resolve())
    # output i is dataset class i, by name (JSON manifests keep string keys only)
    id2label = {int(k): str(v) for k, v in model.config.id2label.items()}
    mparams = {"name": ref, "label_map": {id2label[i]: names[i] for i in range(min(len(id2label), len(names)))}}
    return {"source": "path", "params": params}, {"source": "hub", "params": mparams}


def _array_inputs(inputs: Path, name: str, data: Any, rows: list[dict] | None, model: Any, fields: dict[str, Any],
                  train: Any) -> tuple[dict, dict, str]:
    """(dataset block, model block, modality) of an image or tabular task; writes arrays and weights."""
    from safetensors.torch import save_file

    if isinstance(data, tuple):
        x, y = (np.asarray(a) for a in data[:2])
        mask = np.asarray(data[2]) if len(data) > 2 and data[2] is not None else None
        ids = None
    else:
        xf, lf, rf, idf = fields["x"], fields["label"], fields["rationale"], fields["id"]
        x = np.stack([np.asarray(r[xf], dtype=np.float32) for r in rows])
        y = np.array([r[lf] for r in rows])
        mask = np.stack([np.asarray(r[rf]) for r in rows]) if rf else None
        ids = np.array([str(r[idf]) for r in rows]) if idf else None
    if ids is None:
        ids = np.array([str(i) for i in range(len(x))])
    if x.ndim not in (2, 4):
        raise XBenchError(f"data: inputs of shape {x.shape[1:]} per example: expected (C, H, W) images or (F,) rows")
    modality = "image" if x.ndim == 4 else "tabular"
    arrays: dict[str, Any] = {"x": x.astype(np.float32), "y": y.astype(np.int64)}
    names = _label_names([{"label": int(v)} for v in y], "label", fields["label_names"], None)
    arrays["label_names"] = np.array(names, dtype=str)
    arrays["ids"] = ids
    if mask is not None:
        arrays["mask"] = mask.astype(np.int8)
    if fields.get("feature_names") is not None:
        arrays["feature_names"] = np.array([str(f) for f in fields["feature_names"]], dtype=str)
    if train is not None:
        xt, yt = (np.asarray(a) for a in train[:2])
        arrays.update(x_train=xt.astype(np.float32), y_train=yt.astype(np.int64))
    atomic_write(inputs / f"{name}.npz", lambda f: np.savez(f, **arrays), mode="wb")
    cls = type(model)
    weights = f"{name}-model.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(inputs / weights))
    mparams = {"module": f"{cls.__module__}:{cls.__qualname__}", "kwargs": dict(fields.get("model_kwargs") or {}),
               "weights": weights}
    return {"source": "arrays", "params": {"file": f"{name}.npz"}}, {"source": "module", "params": mparams}, modality


def _explainers(explainers: Any, attributions: Mapping[str, Any] | None, ids: list[str],
                inputs: Path) -> list[Any] | None:
    """Explainer entries for :func:`xbench.run.config.build_config`: names and classes as they are,
    functions wrapped (:func:`xbench.explainers.custom.from_callable`), precomputed attributions stored."""
    from xbench.explainers.base import Explainer
    from xbench.explainers.custom import copy_precomputed, from_callable, store_precomputed

    if explainers is None and not attributions:
        return None
    out: list[Any] = []
    for e in ([] if explainers is None else [explainers] if isinstance(explainers, (str, type)) else explainers):
        if isinstance(e, (str, tuple)) or (isinstance(e, type) and issubclass(e, Explainer)):
            out.append(e)
        elif callable(e):
            out.append(from_callable(e))
        else:
            raise XBenchError(f"explainer {e!r}: expected a name, an Explainer class, a function or (name, params)")
    for label, attrs in (attributions or {}).items():
        table = dict(attrs) if isinstance(attrs, Mapping) else None
        if table is None:
            attrs = list(attrs)
            if len(attrs) != len(ids):
                raise XBenchError(f"attributions[{label!r}]: {len(attrs)} arrays for {len(ids)} examples "
                                  f"(give one per example, in order, or a dict by example id)")
            table = dict(zip(ids, attrs))
        sha = store_precomputed({str(k): v for k, v in table.items()})
        copy_precomputed(sha, inputs / "precomputed")  # kept with the run, for reproduce elsewhere
        out.append((f"precomputed:{label}", {"sha256": sha}))
    return out


def _ids(rows: list[dict] | None, data: Any, ident: str | None) -> list[str]:
    if rows is None:
        return [str(i) for i in range(len(data[0]))]
    return [str(r[ident]) for r in rows] if ident else [str(i) for i in range(len(rows))]


def _backend(backend: Any) -> Any:
    if backend is None or backend == "local":
        return None
    if backend == "ray":
        from xbench.run.backends import RayBackend

        return RayBackend()
    if hasattr(backend, "execute") and hasattr(backend, "describe"):
        return backend
    raise XBenchError(f"backend={backend!r}: expected 'local', 'ray' or a backend object (xbench.run.backends)")


def evaluate(model: Any, data: Any, *, tokenizer: Any = None, explainers: Any = None,
             attributions: Mapping[str, Any] | None = None, metrics: Any = None, suite: str = "quick",
             name: str = "custom", text: str = "text", x: str = "x", label: str = "label",
             rationale: str | None = None, rationale_format: str = "mask", id: str | None = None,
             label_names: Sequence[str] | None = None, feature_names: Sequence[str] | None = None,
             granularity: str = "words", replacement: str | None = None, target: str = "predicted",
             explained_output: str = "logit", pooling: str = "sum", max_length: int = 128, train: Any = None,
             model_kwargs: Mapping[str, Any] | None = None, save_model: bool | str = "auto", n: int | None = None,
             seed: int = 0, device: str | None = "auto", dtype: str | None = None, threads: int | None = None,
             batch_size: int | None = None, out: str | Path | None = None, progress: bool = False,
             cache: bool = False, backend: Any = None, chunk: int | None = None) -> Results:
    """Evaluate explainers of ``model`` on ``data`` with the metrics of ``suite`` (or ``metrics``), and
    return the :class:`~xbench.api.results.Results` (a run directory: ``out``, or a new temporary one).

    - ``explainers``: registered names (``xbench list explainers``), ``(name, params)`` pairs,
      :class:`~xbench.explainers.base.Explainer` subclasses, or functions ``fn(inputs[, seed])`` of
      :class:`~xbench.features.protocol.AttributionInputs`; default: the suite's.
    - ``attributions``: ``{label: one array per example (or {example id: array})}``, attributions
      computed elsewhere, scored as explainer ``precomputed:<label>``.
    - ``metrics``: metric names or ``(name, params)``; default: the suite's (``quick``).
    - ``rationale``: the field holding each example's gold rationale (text: 0/1 per whitespace word,
      or spans/chars with ``rationale_format``; images: an (H, W) mask; tables: 0/1 per column).
    - ``granularity`` (text): ``words`` (one feature per whitespace word, subword scores pooled by
      ``pooling``) or ``tokens``; ``replacement``: how a removed feature is replaced (the modality's
      default: [MASK] for text, 0 for images, the training mean for tables); ``train``: ``(X, y)``
      rows a tabular baseline is computed from (default: the evaluated rows).
    - ``device``, ``dtype``, ``threads``, ``batch_size``: where and how the model runs.
    - ``n``: evaluate the first n examples (default: all).
    - ``backend``: ``"local"`` (default: this process), ``"ray"`` (a local Ray instance on this
      machine's cores) or a :class:`~xbench.run.backends.RayBackend` (e.g. with an ``address``);
      ``chunk``: examples per partition, the unit of work the backend spreads (see
      docs/performance.md). The scores do not depend on the backend.
    """
    from xbench.core import progress as bars
    from xbench.run.config import build_config
    from xbench.run.runner import Runner

    t0 = time.time()
    chosen_backend = _backend(backend)
    rows = None if isinstance(data, tuple) else _rows(data)
    if rows is not None and not rows:
        raise XBenchError("data: no examples")
    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"xbench-{name}-"))
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    fields = {"text": text, "x": x, "label": label, "rationale": rationale, "rationale_format": rationale_format,
              "id": id, "label_names": label_names, "feature_names": feature_names, "model_kwargs": model_kwargs}
    spec: dict[str, Any] = {"name": name, "target": target, "explained_output": explained_output,
                            "rationale": bool(rationale) or (isinstance(data, tuple) and len(data) > 2)}
    if tokenizer is not None or _is_hf(model):
        if tokenizer is None:
            raise XBenchError("a transformers model needs its tokenizer= (text tasks)")
        ds, md = _text_inputs(inputs, name, rows, model, tokenizer, fields, save_model)
        spec.update(modality="text", granularity=granularity, pooling=pooling, max_length=max_length)
    else:
        ds, md, modality = _array_inputs(inputs, name, data, rows, model, fields, train)
        spec["modality"] = modality
    if replacement is not None:
        spec["replacement"] = replacement
    spec.update(dataset=ds, model=md)
    import yaml

    atomic_write_text(inputs / f"{name}.yaml", yaml.safe_dump(spec, sort_keys=False))
    ids = _ids(rows, data, id)
    entries = _explainers(explainers, attributions, ids, inputs)
    runtime = {k: v for k, v in {"device": device, "dtype": dtype, "threads": threads,
                                 "batch_size": batch_size}.items() if v is not None}
    cfg = build_config([str(inputs / f"{name}.yaml")], metrics if metrics is not None else suite, entries,
                       n=n or len(ids), seed=seed, cache=cache, runtime=runtime, chunk=chunk)
    if isinstance(metrics, str):
        cfg.suite = metrics
    runner = Runner(cfg, out, progress=progress, log=None if progress else (lambda msg: None),
                    models={name: (model, tokenizer, {"live": True, "recorded_as": md})},
                    backend=chosen_backend)
    with bars.switched(progress):
        runner.run()
    res = Results(out, runner.failures)
    res.seconds = round(time.time() - t0, 2)
    return res

