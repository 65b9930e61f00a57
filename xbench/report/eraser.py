"""Export a run's attributions as an ERASER results file, for the official scorer.

The ERASER benchmark (DeYoung et al. 2020) scores a JSONL file with one line per annotation
(``rationale_benchmark/metrics.py --data_dir D --split S --results FILE``)::

    {"annotation_id": "negR_900.txt",
     "rationales": [{"docid": "negR_900.txt",
                     "hard_rationale_predictions": [{"start_token": 12, "end_token": 15}, ...],
                     "soft_rationale_predictions": [0.0, 0.31, ...]}],     # one per document token
     "classification": "NEG",
     "classification_scores": {"NEG": 0.83, "POS": 0.17},
     "comprehensiveness_classification_scores": {...},   # hard rationale removed
     "sufficiency_classification_scores": {...},         # only the hard rationale kept
     "thresholded_scores": [{"threshold": 0.01, "comprehensiveness_classification_scores": {...},
                             "sufficiency_classification_scores": {...}}, ...]}

How xbench fills it, for each test example of the run (the task is reloaded and must give the
run's fingerprint and model weights):

- ``classification``: the label name of the model's prediction on the full input (the class the
  scorer's comprehensiveness and sufficiency read); ``classification_scores`` its softmax.
- Hard rationale: the top k features by the saved attributions (ties broken exactly as the run's
  metrics break them), with k = max(1, ceil(f * F)), F the features the model sees (the document up
  to truncation). f is ``k_fraction`` (default 0.1), or with ``k_fraction="gold"`` the mean share of
  gold-rationale features over the exported examples (ERASER sets k from the human rationales).
  The selected features' document tokens (``TextExample.word_index``) are merged into maximal runs,
  as ``[start_token, end_token)`` spans over the document, so spans never overlap.
- ``soft_rationale_predictions``: the attribution of each document token (a word's features pooled by
  the task's ``pooling`` rule when features are subword tokens); 0 for tokens truncation cut away.
- ``comprehensiveness_classification_scores``: softmax with the hard rationale's features removed by
  the task's replacement policy, in token-id space; ``sufficiency_...``: with every other feature
  removed. Tokens cut by truncation are absent from both inputs, as from the full one.
- ``thresholded_scores`` (the scorer's AOPC): the same two with k = max(1, ceil(b * F)) for each bin b
  (default the scorer's 1, 5, 10, 20, 50 %), the bins of xbench's ``comprehensiveness`` and
  ``sufficiency`` metrics; when the run's target is the prediction, the scorer's AOPCs equal those
  metrics' means.

Forward passes go through :class:`~xbench.features.engine.PerturbationEngine` (deduplicated, batched). The
official scorer needs a line for every annotation of the split it scores (it fails on a missing one):
for a run over part of a split (``--n``, or a task that drops examples), ``--scorer-data DIR`` writes
a folder whose ``{split}.jsonl`` holds only the exported annotations, to score against.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from xbench.core.errors import XBenchError
from xbench.metrics.base import Context, Metric, k_of

AOPC_BINS = (0.01, 0.05, 0.1, 0.2, 0.5)  # the official scorer's default --aopc_thresholds


def _pick(kind: str, given: str | None, available: list[str], where: str) -> str:
    if given is not None:
        if given not in available:
            raise XBenchError(f"{where}: no {kind} {given!r} in the run; available: {', '.join(available) or '(none)'}")
        return given
    if len(available) != 1:
        raise XBenchError(f"{where}: the run has {len(available)} {kind}s ({', '.join(available)}); "
                          f"choose one with --{kind}")
    return available[0]


class ScorerInputs(Metric):
    """What the official scorer reads of each example, computed like a metric (planned on the shared
    engine, then read): the hard rationale (the top-k features), the softmax on the full input, with
    the rationale removed and with only it kept, for k and for each AOPC bin. The value is 0; the
    ERASER results line of each example goes to ``notes['lines']``. Not registered: the export's."""

    family, direction, range, ideal = "faithfulness", "higher", (0.0, 0.0), 0.0
    params = {"k_fraction": 0.1, "bins": list(AOPC_BINS)}

    def plan_one(self, ctx: Context, i: int) -> Any:
        ex = ctx.task.examples[i]
        ks = np.array([k_of(self.p["k_fraction"], ex.n_features)] + [k_of(b, ex.n_features) for b in self.p["bins"]])
        top = ctx.top_masks(i, ks)  # (1 + |bins|, F)
        return top[0], ctx.engine.submit(ex, ~top), ctx.engine.submit(ex, top)

    def score_one(self, ctx: Context, i: int, state: Any) -> float:
        hard, comp, suff = state
        ex, names, spec = ctx.task.examples[i], ctx.task.label_names, ctx.task.spec

        def dist(handle: int) -> dict[str, float]:
            return {n: float(v) for n, v in zip(names, ctx.engine.probs(np.array([handle]))[0])}

        full = ctx.engine.probs(ctx.full[i:i + 1])[0]
        soft = word_scores(ex, ctx.expl.attributions[i], int(ex.meta["n_tokens"]), spec.pooling)
        self.notes.setdefault("lines", []).append({
            "annotation_id": str(ex.meta["annotation_id"]),
            "rationales": [{
                "docid": str(ex.meta["docid"]),
                "hard_rationale_predictions": token_spans(ex.word_index[hard][ex.word_index[hard] < int(ex.meta["n_tokens"])]),
                "soft_rationale_predictions": [float(s) for s in soft],
            }],
            "classification": names[int(full.argmax())],
            "classification_scores": dist(int(ctx.full[i])),
            "comprehensiveness_classification_scores": dist(int(comp[0])),
            "sufficiency_classification_scores": dist(int(suff[0])),
            "thresholded_scores": [
                {"threshold": b, "comprehensiveness_classification_scores": dist(int(comp[j + 1])),
                 "sufficiency_classification_scores": dist(int(suff[j + 1]))}
                for j, b in enumerate(self.p["bins"])],
        })
        return 0.0


ScorerInputs.name = "eraser_scorer_inputs"  # set after the class body: not registered


def word_scores(ex: Any, attributions: np.ndarray, n_tokens: int, pooling: str = "sum") -> np.ndarray:
    """One score per document token: the features' attributions pooled per word (sum, mean or max
    over a word's features), 0 for tokens no feature covers (cut by truncation)."""
    w = np.asarray(ex.word_index, dtype=np.int64)
    a = np.asarray(attributions, dtype=np.float64)
    doc = w < n_tokens  # a query read as the second segment is not part of the document
    w, a = w[doc], a[doc]
    out = np.zeros(n_tokens)
    if pooling == "max":
        hit = np.full(n_tokens, -np.inf)
        np.maximum.at(hit, w, a)
        return np.where(np.isfinite(hit), hit, 0.0)
    np.add.at(out, w, a)
    if pooling == "mean":
        out[np.unique(w)] /= np.bincount(w, minlength=n_tokens)[np.unique(w)]
    return out


def token_spans(tokens: np.ndarray) -> list[dict[str, int]]:
    """Maximal runs of document token indices as ERASER spans (``end_token`` exclusive)."""
    from xbench.metrics.plausibility import spans

    return [{"start_token": int(s), "end_token": int(e)} for s, e in spans(np.unique(tokens))]


def export_eraser(run_dir: str | Path, task: str | None = None, explainer: str | None = None,
                  k_fraction: float | str = 0.1, aopc_bins: Sequence[float] = AOPC_BINS
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """ERASER results lines for one (task, explainer) of a run, and a summary (task, explainer, k used).

    See the module docstring for how each field is computed."""
    from xbench.explainers.base import Explanations
    from xbench.metrics.scoring import score_explanations
    from xbench.results.rundir import RunDir
    from xbench.tasks.catalogue import spec_from_dict
    from xbench.tasks.task import load_task, weights_hash

    run = Path(run_dir)
    rd = RunDir(run)
    mpath = rd.manifest_path
    config = rd.config()
    try:
        specs = {t["name"]: t for t in config["tasks"]}
    except (KeyError, TypeError) as e:
        raise XBenchError(f"{mpath}: unreadable run manifest ({e})") from None
    name = _pick("task", task, list(specs), str(run))
    npz_dir = run / "explanations" / name
    done = sorted(p.stem for p in npz_dir.glob("*.npz")) if npz_dir.is_dir() else []
    ename = _pick("explainer", explainer, done, f"{run}/explanations/{name}")
    tinfo = rd.task_info(name)
    spec = spec_from_dict(specs[name], tinfo.get("spec_path") or f"{mpath}: task {name}")
    if spec.modality != "text":
        raise XBenchError(f"{mpath}: task {name} is a {spec.modality} task; ERASER export needs text")

    loaded = load_task(spec, config.get("n"))
    if tinfo.get("fingerprint") and loaded.fingerprint() != tinfo["fingerprint"]:
        raise XBenchError(f"{mpath}: task {name} now loads different examples (fingerprint "
                          f"{loaded.fingerprint()}, run {tinfo['fingerprint']}); the data changed")
    if tinfo.get("model_weights_sha256") and weights_hash(loaded.model.model) != tinfo["model_weights_sha256"]:
        raise XBenchError(f"{mpath}: task {name} now loads a different model than the run's")
    params = {n: p for n, p in config.get("explainers", [])}.get(ename, {})
    expl = Explanations.load(npz_dir / f"{ename}.npz", ename, params, {})
    ids = [ex.id for ex in loaded.examples]
    if expl.example_ids != ids:
        raise XBenchError(f"{npz_dir / ename}.npz: example ids differ from the task's examples")
    for ex, a in zip(loaded.examples, expl.attributions):
        if len(a) != ex.n_features:
            raise XBenchError(f"{npz_dir / ename}.npz: example {ex.id}: {len(a)} attributions for "
                              f"{ex.n_features} features")
        if not np.all(np.isfinite(a)):
            raise XBenchError(f"{npz_dir / ename}.npz: example {ex.id}: NaN or infinite attributions")
        missing = [k for k in ("annotation_id", "docid", "n_tokens") if k not in ex.meta]
        if missing or ex.word_index is None:
            raise XBenchError(f"{mpath}: task {name}: example {ex.id} has no ERASER provenance "
                              f"(meta {missing or 'word_index'}); export needs a task on the 'eraser' source")

    if k_fraction == "gold":
        fr = [ex.rationale.sum() / ex.n_features for ex in loaded.examples if ex.rationale is not None]
        if not fr:
            raise XBenchError(f"{mpath}: task {name} has no gold rationales to set k from")
        frac = float(np.mean(fr))
    else:
        frac = float(k_fraction)
        if not 0 < frac <= 1:
            raise XBenchError(f"k fraction must be in (0, 1]; got {k_fraction!r}")
    bins = tuple(float(b) for b in aopc_bins)
    if any(not 0 < b <= 1 for b in bins):
        raise XBenchError(f"AOPC bins must be fractions in (0, 1]; got {list(bins)}")

    scorer = ScorerInputs(k_fraction=frac, bins=list(bins))
    scored = score_explanations(loaded, [expl], [scorer], seed=int(config.get("seed", 0)))[0]
    lines = scored.results[0].notes["lines"]
    engine = scored.context.engine
    summary = {"task": name, "explainer": ename, "k_fraction": frac, "n": len(lines),
               "target": spec.target, "forward_passes": engine.n_unique, "spec": spec}
    return lines, summary


def write_scorer_data(spec: Any, annotation_ids: Sequence[str], out_dir: str | Path) -> tuple[Path, str]:
    """A folder the official scorer can score a partial export against: ``{split}.jsonl`` with only
    the exported annotations (lines copied from the task's ERASER folder) and ``docs`` linked to the
    folder's documents. Returns (folder, split)."""
    from xbench.tasks.task import sources

    if spec.dataset.source != "eraser":
        raise XBenchError(f"{spec.path}: dataset source {spec.dataset.source!r} is not 'eraser'")
    src, _ = sources(spec)
    root, split = src.locate(), src.p["test_split"]
    keep = set(annotation_ids)
    with open(root / f"{split}.jsonl", encoding="utf-8") as f:
        lines = [ln for ln in f if ln.strip() and json.loads(ln)["annotation_id"] in keep]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    docs = out / "docs"
    if docs.is_symlink() or docs.exists():
        if not (docs.is_symlink() and docs.resolve() == (root / "docs").resolve()):
            raise XBenchError(f"{docs}: exists and is not a link to {root / 'docs'}")
    else:
        docs.symlink_to((root / "docs").resolve(), target_is_directory=True)
    return out, split


def write_jsonl(lines: list[dict[str, Any]], out: str | Path) -> Path:
    from xbench.core.io import atomic_write

    return atomic_write(out, lambda f: f.writelines(json.dumps(x, sort_keys=True) + "\n" for x in lines))


def _k_fraction(value: str) -> float | str:
    if value == "gold":
        return value
    try:
        return float(value)
    except ValueError:
        raise XBenchError(f"--k-fraction must be a number in (0, 1] or 'gold'; got {value!r}") from None


def _bins(value: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise XBenchError(f"--aopc-bins must be comma-separated fractions; got {value!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``xbench export-eraser`` arguments."""
    p.add_argument("run_dir", help="a run directory (from xbench run)")
    p.add_argument("--task", help="task to export (needed when the run has several)")
    p.add_argument("--explainer", help="explainer whose attributions to export (needed when several)")
    p.add_argument("--k-fraction", type=_k_fraction, default=0.1,
                   help="hard rationale size as a share of each input's features (default 0.1), or "
                        "'gold': the mean share of the gold rationales")
    p.add_argument("--aopc-bins", type=_bins, default=AOPC_BINS,
                   help="thresholds for thresholded_scores (default 0.01,0.05,0.1,0.2,0.5; '' for none)")
    p.add_argument("--out", required=True, help="results file to write (JSONL)")
    p.add_argument("--scorer-data", metavar="DIR",
                   help="also write DIR/{split}.jsonl with just the exported annotations (and DIR/docs "
                        "linked to the documents), for the official scorer to score a partial export")
    p.set_defaults(func=cmd_export_eraser)


def cmd_export_eraser(args: argparse.Namespace) -> int:
    lines, s = export_eraser(args.run_dir, args.task, args.explainer, args.k_fraction, args.aopc_bins)
    write_jsonl(lines, args.out)
    print(f"wrote {len(lines)} ERASER results lines to {args.out} (task {s['task']}, explainer "
          f"{s['explainer']}, k = {s['k_fraction']:.4f} of each input's features, target {s['target']})")
    if args.scorer_data:
        folder, split = write_scorer_data(s["spec"], [x["annotation_id"] for x in lines], args.scorer_data)
        print(f"wrote {folder}/{split}.jsonl; score with the ERASER repository's rationale_benchmark/metrics.py "
              f"--data_dir {folder} --split {split} --results {args.out}")
    return 0
