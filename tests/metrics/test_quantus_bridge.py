"""The Quantus bridge (``quantus:<Name>`` metrics), on a small image task with answers on paper.

Fixture: 8 x 8 one-channel images, background noise plus a bright 3 x 3 square (the gold mask).
The model is a fixed "square detector": a 3 x 3 box filter, ReLU(box − 0.5), read out with +1 on
the left half and −1 on the right half (class-1 logit z, class-0 logit −z), so the label "square on
the left" is what it predicts and its gradients sit on and around the square.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from xbench.data.base import DatasetSource, Splits
from xbench.data.base import ArrayRecord
from xbench.core.errors import XBenchError
from xbench.metrics.base import Context, Metric
from xbench.models.base import ModelSource
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task

quantus = pytest.importorskip("quantus")

H = W = 8
N_TEST = 6


def square_images(n: int, seed: int) -> list[ArrayRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = 0.05 * rng.standard_normal((1, H, W))
        r, c = (int(v) for v in rng.integers(0, H - 2, size=2))
        x[0, r:r + 3, c:c + 3] += 1.0
        mask = np.zeros((H, W), dtype=int)
        mask[r:r + 3, c:c + 3] = 1
        out.append(ArrayRecord(f"sq{seed}-{i}", x.astype(np.float32), int(c + 1 < W // 2), mask=mask))
    return out


class SquareImages(DatasetSource):
    name = "test-quantus-squares"
    params = {}

    def load(self, seed):
        return Splits(square_images(8, seed + 1), square_images(N_TEST, seed), ["right", "left"])


class SquareDetector(torch.nn.Module):
    """Box filter, ReLU(box − 0.5), read out +1 on the left half and −1 on the right: logits (−z, z, 0, ...)."""

    def __init__(self, h: int = H, w: int = W, n_classes: int = 2) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.box = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.head = torch.nn.Linear(h * w, 1, bias=False)
        with torch.no_grad():
            self.box.weight.fill_(1.0 / 9)
            self.box.bias.fill_(-0.5)
            side = torch.where(torch.arange(w) < w // 2, 1.0, -1.0)
            self.head.weight.copy_(side.repeat(h)[None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(torch.relu(self.box(x)).flatten(1))
        return torch.cat([-z, z, torch.zeros(len(z), self.n_classes - 2)], 1)


class SquareDetectorSource(ModelSource):
    name = "test-quantus-detector"
    params = {}

    def load(self, task, splits):
        _, h, w = splits.test[0].x.shape
        return SquareDetector(h, w, len(splits.label_names)).eval(), None, {"test_accuracy": None}


TASK = {"name": "squares", "modality": "image", "replacement": "zero", "rationale": True,
        "dataset": {"source": "test-quantus-squares"}, "model": {"source": "test-quantus-detector"}}


@pytest.fixture(scope="module")
def task():
    return load_task(parse_task(dict(TASK), "squares.yaml"))


def context(task, name="saliency", attributions=None, **params):
    from xbench.explainers.base import Explainer

    explainer = Explainer.registry.get(name)(**params)
    engine = task.engine()
    targets = np.array([ex.label for ex in task.examples])
    expl = explainer.explain(task, task.examples, targets.tolist())
    if attributions is not None:
        expl.attributions = [np.asarray(a, dtype=np.float64) for a in attributions]
    ctx = Context(task, expl, targets, engine, 0, explainer)
    engine.run()
    return ctx


def score(ctx, name, **params):
    m = Metric.registry.get(name)(**params)
    return m.score(ctx, m.plan(ctx)), m


# -- the factory ------------------------------------------------------------------------------

def test_factory_maps_quantus_metadata():
    pg = Metric.registry.get("quantus:PointingGame")
    assert (pg.family, pg.direction, pg.range, pg.ideal) == ("localisation", "higher", (0.0, 1.0), 1.0)
    assert pg.needs == frozenset({"rationale"}) and pg.modalities == frozenset({"image"})
    pf = Metric.registry.get("quantus:PixelFlipping")
    assert (pf.family, pf.direction) == ("faithfulness", "lower") and "features_in_step" in pf.params
    assert "return_aggregate" not in pf.params and pf.params["examples_per_call"] == 64
    assert (Metric.registry.get("quantus:MaxSensitivity").family, Metric.registry.get("quantus:MPRT").family,
            Metric.registry.get("quantus:Complexity").direction) == ("stability", "sanity", "lower")
    # Quantus marks RegionPerturbation "lower", but its curve is the drop of the target score
    assert Metric.registry.get("quantus:RegionPerturbation").direction == "higher"
    # callable defaults are shown by name, so the manifest can store them
    assert Metric.registry.get("quantus:AvgSensitivity").params["perturb_func"] == "batch_uniform_noise"
    # made on demand, not listed one by one; the prefix is listed once
    assert not any(n.startswith("quantus:") for n in Metric.registry.names())
    assert "quantus:PointingGame" in Metric.registry
    assert "quantus" in Metric.registry.prefixes()


@pytest.mark.parametrize("name, params, message", [
    ("quantus:Pointinggame", {}, "unknown Quantus metric 'quantus:Pointinggame' (did you mean 'quantus:PointingGame'?)"),
    ("quantus:ROAD", {}, "metric 'quantus:ROAD' is not bridged: it returns one curve for the whole batch"),
    ("quantus:PixelFlipping", {"feature_in_step": 2}, "metric 'quantus:PixelFlipping' has no parameter 'feature_in_step'"),
    ("quantus:MaxSensitivity", {"similarity_func": "correlation_spearmann"},
     "parameter 'similarity_func': unknown Quantus function 'correlation_spearmann' (did you mean 'correlation_spearman'?)"),
    ("quantus:MPRT", {"layer_order": "sideways"}, "metric 'quantus:MPRT': Quantus rejected its parameters"),
    ("quantus:RegionPerturbation", {"order": "lerf"}, "parameter 'order' must be 'morf'"),
    ("quantus:Sparseness", {"examples_per_call": 0}, "'examples_per_call' must be an integer >= 1"),
])
def test_bad_names_and_params_are_one_line_errors(name, params, message):
    with pytest.raises(XBenchError) as e:
        Metric.registry.get(name)(**params)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_cli_lists_the_prefix_once_and_reports_bad_names(capsys):
    from xbench.cli import main

    assert main(["list", "metrics"]) == 0
    out = capsys.readouterr().out
    assert out.count("quantus:<Name>") == 1 and "quantus:PixelFlipping" in out and "quantus:Sparseness" not in out
    assert main(["run", "synthetic-sentiment", "--metrics", "quantus:PixelFliping"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did you mean 'quantus:PixelFlipping'" in err and "\n" not in err


def test_suite_file_loads_and_names_functions():
    from xbench.run.config import load_suite

    suite = load_suite("quantus")
    names = [n for n, _ in suite.metrics]
    assert len(names) >= 5 and all(n.startswith("quantus:") for n in names)
    m = Metric.registry.get("quantus:MaxSensitivity")(similarity_func="difference", nr_samples=2)
    assert m.given["similarity_func"] is quantus.functions.similarity_func.difference


# -- reference values ----------------------------------------------------------------------------

def test_localisation_values_by_hand(task):
    """One-hot attributions: the pointing game hits iff the hot pixel is in the mask; relevance mass
    accuracy is 1 or 0; top-k intersection with k = 9 counts the mask's pixels among the top 9."""
    attrs, hot_in = [], []
    for j, ex in enumerate(task.examples):
        a = np.linspace(0.01, 0.02, H * W)  # distinct, small
        inside = j % 2 == 0
        pix = np.flatnonzero(ex.rationale == 1)[0] if inside else np.flatnonzero(ex.rationale == 0)[0]
        a[pix] = 1.0
        attrs.append(a)
        hot_in.append(inside)
    ctx = context(task, attributions=attrs)
    (pg, err), _ = score(ctx, "quantus:PointingGame")
    assert all(e is None for e in err)
    np.testing.assert_array_equal(pg, np.array(hot_in, dtype=float))
    (tk, _), _ = score(ctx, "quantus:TopKIntersection", k=9)
    for j, ex in enumerate(task.examples):
        top = np.argsort(-attrs[j], kind="stable")[:9]
        assert tk[j] == pytest.approx(ex.rationale[top].sum() / 9)
    (rma, _), _ = score(ctx, "quantus:RelevanceMassAccuracy")
    for j, ex in enumerate(task.examples):
        assert rma[j] == pytest.approx(attrs[j][ex.rationale == 1].sum() / attrs[j].sum())


def test_pixel_flipping_is_the_area_under_quantus_curve_and_counts_passes(task):
    """The bridge's value is the trapezoid area of Quantus's own per-example curve, and the rows
    Quantus pushed through the module are counted: ceil(64 / 16) = 4 perturbed inputs per example."""
    ctx = context(task)
    f0 = task.model.n_forward
    (vals, err), m = score(ctx, "quantus:PixelFlipping", features_in_step=16)
    assert all(e is None for e in err)
    assert task.model.n_forward - f0 == N_TEST * 4 == m.notes["quantus_forward_rows"]
    x = np.stack([ex.x for ex in task.examples])
    a = np.stack([ex_a.reshape(1, H, W) for ex_a in ctx.expl.attributions])
    curves = quantus.PixelFlipping(features_in_step=16, disable_warnings=True)(
        model=task.model.model, x_batch=x, y_batch=ctx.targets, a_batch=a, channel_first=True, device="cpu")
    want = [np.sum((np.array(c[1:]) + np.array(c[:-1])) / 2) for c in curves]
    np.testing.assert_allclose(vals, want, rtol=1e-12)
    assert "area under" in m.notes["reduction"]


def test_values_do_not_depend_on_the_batch(task):
    """Quantus divides by the max over its whole batch; the bridge normalises per example, so a
    batch of six and six batches of one agree. EffectiveComplexity (count of |a|/max|a| > eps) is
    scale-sensitive: with attributions a hundred times smaller on some examples, Quantus's
    batch-wide default would count nothing on those."""
    rng = np.random.default_rng(0)
    attrs = [rng.uniform(0, 1, H * W) * (1.0 if j % 2 else 0.01) for j in range(N_TEST)]
    ctx = context(task, attributions=attrs)
    (together, _), _ = score(ctx, "quantus:EffectiveComplexity", eps=0.3)
    (alone, _), _ = score(ctx, "quantus:EffectiveComplexity", eps=0.3, examples_per_call=1)
    np.testing.assert_array_equal(together, [np.sum(a / a.max() > 0.3) for a in attrs])
    np.testing.assert_array_equal(together, alone)
    batchwide = quantus.EffectiveComplexity(eps=0.3, disable_warnings=True)(
        model=None, x_batch=np.stack([ex.x for ex in task.examples]), y_batch=ctx.targets,
        a_batch=np.stack([a.reshape(1, H, W) for a in attrs]), channel_first=True)
    assert list(batchwide[0::2]) == [0] * (N_TEST // 2)


def test_sparseness_and_complexity_equal_native(task):
    """Same inputs, same definition: quantus:Sparseness == sparseness, quantus:Complexity == complexity."""
    for explainer in ("saliency", "input_x_gradient", "random"):
        ctx = context(task, explainer)
        for native, bridged in (("sparseness", "quantus:Sparseness"), ("complexity", "quantus:Complexity")):
            (want, e1), _ = score(ctx, native)
            (got, e2), _ = score(ctx, bridged)
            assert e1 == e2 == [None] * N_TEST
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


LOCALISATION = [("pointing_game", {}, "quantus:PointingGame", {}),
                ("relevance_mass_accuracy", {"relevance": "signed"}, "quantus:RelevanceMassAccuracy", {}),
                ("relevance_rank_accuracy", {}, "quantus:RelevanceRankAccuracy", {}),
                ("top_k_intersection", {"k": 9}, "quantus:TopKIntersection", {"k": 9})]


def test_localisation_equals_native(task):
    """xbench's localisation metrics == Quantus's through the bridge, on the same attributions:
    exactly, wherever no tie straddles the cut (the top-1 for the pointing game, the top |G| = 9 for
    the others), where the two break ties differently (documented in xbench/metrics/localisation.py).
    Relevance mass in Quantus's signed form (``relevance: signed``)."""
    compared = 0
    for explainer in ("saliency", "integrated_gradients", "random"):
        ctx = context(task, explainer)
        for native, nparams, bridged, qparams in LOCALISATION:
            (want, e1), _ = score(ctx, native, **nparams)
            (got, e2), _ = score(ctx, bridged, **qparams)
            assert e1 == e2 == [None] * N_TEST
            for i, a in enumerate(ctx.expl.attributions):
                top = np.sort(a)[::-1]
                cut = 1 if native == "pointing_game" else 9
                if native == "relevance_mass_accuracy" or top[cut - 1] != top[cut]:
                    assert got[i] == pytest.approx(want[i], abs=1e-12), (explainer, native, i)
                    compared += 1
    assert compared >= 3 * 4 * N_TEST - 3


def test_failures_are_per_example(task):
    attrs = [np.full(H * W, 0.5)] + [np.arange(H * W, dtype=float) for _ in range(N_TEST - 2)] + [np.full(H * W, np.nan)]
    ctx = context(task, attributions=attrs)
    (vals, err), _ = score(ctx, "quantus:Sparseness")
    assert err[0].startswith("constant attributions") and err[-1] == "NaN or infinite attributions"
    assert all(e is None for e in err[1:-1]) and np.isfinite(vals[1:-1]).all() and np.isnan(vals[[0, -1]]).all()
    # Quantus refuses k >= the number of pixels: every example says why, nothing is raised
    (vals, err), _ = score(ctx, "quantus:TopKIntersection", k=H * W)
    assert all(e.startswith("Quantus TopKIntersection failed: ValueError: 'k' must be smaller") for e in err[1:-1])


def test_reexplaining_metrics_are_seeded_and_leave_the_global_rng_alone(task):
    ctx = context(task, "smoothgrad", nt_samples=2)
    state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    f0 = task.model.n_forward
    (v1, e1), m = score(ctx, "quantus:MaxSensitivity", nr_samples=2)
    assert task.model.n_forward - f0 >= N_TEST * 2  # the re-explanations' passes are the metric's
    (v2, e2), _ = score(ctx, "quantus:MaxSensitivity", nr_samples=2)
    assert e1 == e2 == [None] * N_TEST and np.isfinite(v1).all() and (v1 > 0).all()
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_mprt_reduces_layers_and_counts_passes_on_random_copies(task):
    ctx = context(task)
    before = list(ctx.reexplain_passes)
    (vals, err), m = score(ctx, "quantus:MPRT")
    assert err == [None] * N_TEST and np.all(np.abs(vals) <= 1)
    assert set(m.notes["layer_means"]) == {"box", "head"}
    np.testing.assert_allclose(vals.mean(), np.mean(list(m.notes["layer_means"].values())), atol=1e-12)
    assert ctx.reexplain_passes[0] - before[0] >= 2 * N_TEST  # two randomised models, re-explained


# -- through the runner ----------------------------------------------------------------------------

METRICS = [("quantus:PointingGame", {}), ("quantus:RelevanceMassAccuracy", {}), ("quantus:TopKIntersection", {"k": 9}),
           ("quantus:PixelFlipping", {"features_in_step": 8}), ("quantus:Sparseness", {}), ("quantus:Complexity", {}),
           ("quantus:MaxSensitivity", {"nr_samples": 3}), ("quantus:RandomLogit", {}),
           ("sparseness", {}), ("complexity", {})]


def test_runner_end_to_end(tmp_path):
    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner

    spec = parse_task(dict(TASK), "squares.yaml")
    cfg = RunConfig([spec], [("saliency", {}), ("occlusion", {}), ("random", {})], METRICS, seed=0)
    out = Runner(cfg, tmp_path / "run", progress=False, log=lambda m: None).run()
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 3 * len(METRICS) * N_TEST
    assert scores["error"].isna().all(), scores[scores["error"].notna()].head()
    board = json.loads((out / "leaderboard.json").read_text())
    rows = board["rows"] if isinstance(board, dict) else board
    by = {(r["explainer"], r["metric"]): r for r in rows}
    assert by[("saliency", "quantus:PixelFlipping")]["direction"] == "lower"
    assert by[("saliency", "quantus:PointingGame")]["family"] == "localisation"
    # the detector's gradient sits on the square: saliency points into the mask, random rarely does
    assert by[("saliency", "quantus:PointingGame")]["mean"] == 1.0
    assert by[("saliency", "quantus:PointingGame")]["rank"] == 1
    # the equality with the native metric holds through the runner, too
    s = scores.set_index(["explainer", "metric", "example"])["value"].sort_index()
    for e in ("saliency", "occlusion", "random"):
        np.testing.assert_allclose(s[e, "quantus:Sparseness"], s[e, "sparseness"], atol=1e-12)
    man = json.loads((out / "manifest.json").read_text())
    cost = man["tasks"]["squares"]["explainers"]["saliency"]["metric_cost"]
    assert cost["quantus:PixelFlipping"]["forward_passes_per_example"] == 8  # 64 pixels, 8 per step
    assert cost["quantus:MaxSensitivity"]["backward_passes_per_example"] >= 3  # saliency again, per noisy input
    assert man["config"]["metrics"][3] == ["quantus:PixelFlipping", {
        **Metric.registry.get("quantus:PixelFlipping").params, "features_in_step": 8}]


def test_synthetic_shapes_images(tmp_path):
    """The real synthetic-shapes generator (32 x 32, gold masks = the deciding shape), few examples,
    with the fixture's detector in place of the trained CNN (training it takes minutes here)."""
    import yaml

    from xbench.spec.catalogue import tasks_dir
    from xbench.run.config import RunConfig
    from xbench.run.runner import Runner

    path = tasks_dir() / "synthetic-shapes.yaml"
    if not path.exists():
        pytest.skip("tasks/synthetic-shapes.yaml is absent")
    d = yaml.safe_load(path.read_text())
    d["dataset"]["params"].update(n_train=4, n_test=4)
    d["model"] = {"source": "test-quantus-detector"}
    spec = parse_task(d, str(path))
    metrics = [("quantus:PointingGame", {}), ("quantus:TopKIntersection", {"k": 16}),
               ("quantus:PixelFlipping", {"features_in_step": 128}), ("quantus:Sparseness", {}), ("sparseness", {})]
    out = Runner(RunConfig([spec], [("saliency", {}), ("random", {})], metrics, n=4, seed=0),
                 tmp_path / "run", progress=False, log=lambda m: None).run()
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 2 * len(metrics) * 4 and scores["error"].isna().all()
    v = scores.set_index(["explainer", "metric", "example"])["value"].sort_index()
    assert v.loc[(slice(None), "quantus:TopKIntersection")].between(0, 1).all()
    np.testing.assert_allclose(v["saliency", "quantus:Sparseness"], v["saliency", "sparseness"], atol=1e-12)


def test_quantus_noise_follows_the_run_seed(task):
    """Quantus draws its perturbation noise from the global RNG, which the bridge seeds from (task,
    metric, the batch's examples, run seed): another run seed, other noise and other values; the same
    seed, the same values (above)."""
    ctx0 = context(task, "saliency")
    ctx1 = context(task, "saliency")
    ctx1.seed = 1
    (v0, e0), _ = score(ctx0, "quantus:MaxSensitivity", nr_samples=2)
    (v1, e1), _ = score(ctx1, "quantus:MaxSensitivity", nr_samples=2)
    assert e0 == e1 == [None] * N_TEST and not np.array_equal(v0, v1)
