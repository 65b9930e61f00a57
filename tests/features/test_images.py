"""Image tasks: datasets, the trained CNN, Grad-CAM, pixel-group explainers, and the metric families
that re-explain (stability, sanity) on images — against closed forms where there are any."""
from __future__ import annotations

import os
from collections import Counter

from dataclasses import replace

import numpy as np
import pytest
import torch

from helpers import score
from helpers_images import GOLD, W_PATCH, W_RAMP, X_SIGNED, task4
from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric

E, M = Explainer.registry.get, Metric.registry.get


@pytest.fixture(scope="module", autouse=True)
def _one_intra_op_thread():
    """The models here are tiny: one torch thread trains and explains them as fast as two, and keeps
    OpenMP's spinning threads from multiplying the time on a busy machine (measured: 20 s vs 70-150 s
    for this module at load 3-4 on 2 cores). Restored afterwards; library code never sets it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


from helpers import run_metric  # noqa: E402  (values, errors, context through score_explanations)


# --- datasets ----------------------------------------------------------------------------------

def test_digits_are_scaled_split_by_seed_and_have_no_mask():
    from xbench.data.images import Digits

    a, b, c = Digits().load(0), Digits().load(0), Digits().load(1)
    assert len(a.train) + len(a.test) == 1797 and len(a.test) == 450  # ⌈0.25 · 1797⌉
    assert a.label_names == [str(k) for k in range(10)]
    x = np.stack([r.x for r in a.test])
    assert x.shape[1:] == (1, 8, 8) and x.dtype == np.float32 and x.min() == 0 and x.max() == 1
    assert all(r.mask is None for r in a.test)
    assert [r.id for r in a.test] == [r.id for r in b.test] != [r.id for r in c.test]
    counts = Counter(r.label for r in a.test)  # stratified: 43-46 of each digit
    assert min(counts.values()) >= 43
    with pytest.raises(XBenchError, match="test_size"):
        Digits(test_size=1.5).load(0)


def test_synthetic_shapes_follow_the_generation_rule():
    from scipy.ndimage import binary_dilation

    from xbench.data.images import CLASS_SHAPES, DISTRACTORS, SyntheticShapes

    src = SyntheticShapes(n_train=600, n_test=10)
    sp = src.load(0)
    assert sp.label_names == list(CLASS_SHAPES)
    ink_levels = []
    for r in sp.train:
        x, g = r.x[0], r.mask.astype(bool)
        assert r.x.shape == (1, 16, 16) and r.meta["shapes"][0] == sp.label_names[r.label]
        assert len(r.meta["shapes"]) == 3 and all(t in DISTRACTORS for t in r.meta["shapes"][1:])
        ink = x >= 0.6  # shapes are drawn at 0.6..1, the background is noise below 0.1
        assert ink[g].all() and x[~ink].max() < 0.1 + 1e-6
        assert len(set(np.round(x[g], 6))) == 1  # one intensity for the deciding shape
        # the other shapes neither overlap nor touch the deciding one
        assert not (binary_dilation(g, np.ones((3, 3), bool)) & ink & ~g).any()
        ink_levels.append(g.sum())
    assert min(ink_levels) >= 5  # the smallest shape (a radius-2 cross) has 9 pixels; a triangle 9
    # distractors carry no label information: their types are spread alike over every class
    table = np.zeros((4, 3))
    for r in sp.train:
        for t in r.meta["shapes"][1:]:
            table[r.label, DISTRACTORS.index(t)] += 1
    share = table / table.sum(1, keepdims=True)
    assert np.abs(share - 1 / 3).max() < 0.1
    again = SyntheticShapes(n_train=600, n_test=10).load(0)
    assert all(np.array_equal(p.x, q.x) and np.array_equal(p.mask, q.mask) for p, q in zip(sp.test, again.test))
    assert not np.array_equal(sp.test[0].x, SyntheticShapes(n_train=600, n_test=10).load(1).test[0].x)
    with pytest.raises(XBenchError, match="max_radius"):
        SyntheticShapes(max_radius=4).load(0)  # 2·4 + 2 > 16 / 2


# --- the trained CNN on the shapes task ----------------------------------------------------------

@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """The shipped task, trained once per module in the session's private cache (module fixtures run
    before conftest's per-test cache fixture, so it is set here too)."""
    from conftest import _session_cache
    from xbench.tasks.task import load_task
    from xbench.tasks.catalogue import resolve_task

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XBENCH_CACHE", _session_cache(tmp_path_factory))
        return load_task(resolve_task("synthetic-shapes"), n=40)


def test_shapes_cnn_is_accurate_and_exposes_its_cam_layer(shapes):
    from xbench.metrics.sanity import layer_groups

    info = shapes.info["model"]
    assert info["test_accuracy"] >= 0.95
    assert "tmp" in info["cache_path"] or "pytest" in info["cache_path"]  # never the user's cache
    model = shapes.model.model
    assert model.cam_layer == "relu2" and isinstance(model.get_submodule("relu2"), torch.nn.ReLU)
    assert [name for name, _ in layer_groups(model)] == ["fc", "conv2", "conv1"]  # top-down


def test_good_explainers_localise_the_deciding_shape_random_does_not(shapes):
    targets = shapes.model.forward_array(np.stack([ex.x for ex in shapes.examples])).argmax(1)
    means = {}
    for name in ("integrated_gradients", "occlusion", "grad_cam", "random"):
        expl = E(name)().explain(shapes, shapes.examples, targets.tolist())
        for metric in ("pointing_game", "relevance_mass_accuracy"):
            v, err = score(shapes, M(metric)(), expl.attributions, targets)
            assert all(e is None for e in err)
            means[name, metric] = float(np.mean(v))
    for good in ("integrated_gradients", "occlusion", "grad_cam"):
        assert means[good, "pointing_game"] >= means["random", "pointing_game"] + 0.4, means
        assert means[good, "relevance_mass_accuracy"] >= means["random", "relevance_mass_accuracy"] + 0.25, means
    assert means["integrated_gradients", "pointing_game"] >= 0.75


def test_digits_task_trains_an_accurate_cnn_and_has_no_localisation():
    from xbench.tasks.task import load_task
    from xbench.tasks.catalogue import resolve_task

    task = load_task(resolve_task("digits"), n=5)
    assert task.info["model"]["test_accuracy"] >= 0.95
    assert task.examples[0].x.shape == (1, 8, 8) and task.examples[0].n_features == 64
    assert not M("pointing_game")().applies_to(task, E("saliency")())
    # patch "auto" for an 8-pixel side is one pixel: occlusion is leave-one-pixel-out
    from xbench.features.image import image_groups

    assert np.array_equal(image_groups(task.examples[0], "auto"), np.arange(64))


# --- Grad-CAM, in closed form ------------------------------------------------------------------

def test_grad_cam_closed_form():
    task = task4("cam")
    ex = task.examples[1]  # signed pixels
    a = E("grad_cam")(interpolate="nearest").explain(task, [ex], [1]).attributions[0]
    np.testing.assert_allclose(a, 2 * np.maximum(X_SIGNED, 0).reshape(-1), atol=1e-6)
    raw = E("grad_cam")(relu=False, interpolate="nearest").explain(task, [ex], [1]).attributions[0]
    np.testing.assert_allclose(raw, (2 * np.maximum(X_SIGNED, 0) - np.maximum(-X_SIGNED, 0)).reshape(-1), atol=1e-6)
    zero = E("grad_cam")().explain(task, [ex], [0]).attributions[0]  # class 0's logit ignores A
    np.testing.assert_allclose(zero, 0, atol=1e-12)


def test_grad_cam_upsamples_a_coarse_layer():
    task = task4("cam", stride=2)  # the layer sees pixels (0, 0), (0, 2), (2, 0), (2, 2)
    ex = task.examples[1]
    a = E("grad_cam")(interpolate="nearest").explain(task, [ex], [1]).attributions[0].reshape(4, 4)
    coarse = 2 * np.maximum(X_SIGNED[::2, ::2], 0)
    np.testing.assert_allclose(a, np.kron(coarse, np.ones((2, 2))), atol=1e-6)
    b = E("grad_cam")().explain(task, [ex], [1]).attributions[0].reshape(4, 4)  # bilinear
    assert b.shape == (4, 4) and np.all(b >= 0) and not np.allclose(a, b)
    assert b.min() >= coarse.min() - 1e-6 and b.max() <= coarse.max() + 1e-6  # interpolates, never overshoots


def test_grad_cam_finds_the_layer_and_refuses_other_modalities(linear_task):
    from xbench.explainers.cam import cam_layer

    seq = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Conv2d(2, 2, 3))
    assert cam_layer(seq)[0] == "2"  # the last nn.Conv2d when the model names none
    assert cam_layer(seq, "1")[0] == "1"
    with pytest.raises(XBenchError, match="no layer 'nope'"):
        cam_layer(seq, "nope")
    with pytest.raises(XBenchError, match="no nn.Conv2d"):
        cam_layer(torch.nn.Linear(2, 2))
    assert not E("grad_cam")().applies_to(linear_task)
    assert E("grad_cam")().conventions(task4("cam"))["layer"] == "act"


# --- perturbation explainers over pixel groups ----------------------------------------------------

def patch_sums(x: np.ndarray, w: np.ndarray = W_PATCH) -> np.ndarray:
    """Each pixel gets the sum of w·x over its 2x2 patch."""
    s = (w * x).reshape(2, 2, 2, 2).sum((1, 3))
    return np.kron(s, np.ones((2, 2))).reshape(-1)


@pytest.mark.parametrize("name", ["occlusion", "kernel_shap"])
def test_patch_explainers_give_each_pixel_its_patch_score(name):
    task = task4()
    params = {"patch": 2, **({"n_samples": 64} if name == "kernel_shap" else {})}
    out = E(name)(**params).explain(task, task.examples, [1, 1])
    for ex, a in zip(task.examples, out.attributions):  # linear in the 4 patch indicators: exact
        np.testing.assert_allclose(a, patch_sums(ex.x[0]), atol=1e-4)
    assert out.forward[0] <= (5 if name == "occlusion" else 64 + 2)  # 4 patches (+ the input), not 16 pixels
    assert E(name)(patch=2).conventions(task)["pixel_groups"].startswith("grid, patch 2")


def test_lime_on_patches_is_constant_per_patch_and_ranks_them():
    task = task4()
    a = E("lime")(patch=2, n_samples=100).explain(task, task.examples[:1], [1]).attributions[0].reshape(4, 4)
    blocks = a.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)
    assert np.allclose(blocks, blocks[:, :1])  # one value per patch
    assert list(np.argsort(-blocks[:, 0])) == [0, 1, 3, 2]  # patch sums 2, 1, -1, 0.5


def test_patch_param_is_ignored_for_text_and_checked(linear_task):
    ex = linear_task.examples
    a = E("occlusion")().explain(linear_task, ex, [1] * len(ex)).attributions
    b = E("occlusion")(patch=3, segmentation="slic").explain(linear_task, ex, [1] * len(ex)).attributions
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    with pytest.raises(XBenchError, match="'patch'"):
        E("lime")(patch=0)
    with pytest.raises(XBenchError, match="'segmentation'"):
        E("kernel_shap")(segmentation="quickshift")


def test_slic_superpixels_group_pixels(shapes):
    from xbench.features.image import image_groups

    ex = shapes.examples[0]
    g = image_groups(ex, "auto", "slic")
    assert g.shape == (256,) and set(g) == set(range(g.max() + 1)) and 4 <= g.max() + 1 <= 100
    gold = ex.rationale.astype(bool)
    # superpixels follow the ink: most of the deciding shape lies in segments that are mostly shape
    pure = [k for k in set(g[gold]) if gold[g == k].mean() >= 0.5]
    assert np.isin(g[gold], pure).mean() >= 0.5
    a = E("occlusion")(segmentation="slic").explain(shapes, [ex], [ex.label]).attributions[0]
    assert all(len(set(a[g == k])) == 1 for k in range(g.max() + 1))


# --- gradient explainers' conventions on images ----------------------------------------------------

def test_gradient_conventions_on_images():
    task = task4(replacement="mean")
    ex = task.examples[1]
    sal = E("saliency")().explain(task, [ex], [1]).attributions[0]
    np.testing.assert_allclose(sal, np.abs(W_PATCH).reshape(-1), atol=1e-6)  # |∂z/∂x|
    ig = E("integrated_gradients")().explain(task, [ex], [1]).attributions[0]
    np.testing.assert_allclose(ig, (W_PATCH * (ex.x[0] - ex.baseline[0])).reshape(-1), atol=1e-5)
    assert np.allclose(ex.baseline, X_SIGNED.mean())  # the task's replacement baseline
    sg1 = E("smoothgrad")().explain(task, [ex], [1], seed=3).attributions[0]
    sg2 = E("smoothgrad")().explain(task, [ex], [1], seed=3).attributions[0]
    np.testing.assert_array_equal(sg1, sg2)
    np.testing.assert_allclose(sg1, np.abs(W_PATCH).reshape(-1), atol=1e-6)  # linear: noise changes nothing


# --- stability and sanity metrics on images -------------------------------------------------------

def test_input_noise_is_seeded_bounded_and_shared():
    from xbench.metrics.stability import noisy_input

    _, _, ctx = run_metric(task4("ramp", bias=50.0), M("sparseness")(), E("random")())
    x = ctx.task.examples[1].x
    a, b = noisy_input(ctx, 1, 0.05, 0), noisy_input(ctx, 1, 0.05, 0)
    np.testing.assert_array_equal(a, b)
    r = 0.05 * (x.max() - x.min())
    assert 0 < np.abs(a - x).max() <= r + 1e-6 and not np.array_equal(a, noisy_input(ctx, 1, 0.05, 1))


def test_sensitivity_and_relative_stability_by_hand_on_images():
    """IG of the linear model is exact: a(x') = W·x' (zero baseline), so every value has a closed form."""
    from xbench.metrics.stability import noisy_input

    task = task4("ramp", bias=50.0)  # the prediction never changes: every sample is kept
    vals = {}
    for name in ("max_sensitivity", "avg_sensitivity", "relative_input_stability", "relative_output_stability"):
        v, err, ctx = run_metric(task, M(name)(n_samples=3), E("integrated_gradients")())
        assert err == [None, None]
        vals[name] = v
    for i, ex in enumerate(task.examples):
        x = ex.x[0].astype(np.float64)
        a = W_RAMP * x
        xs = [noisy_input(ctx, i, 0.05, s)[0].astype(np.float64) for s in range(3)]
        sens = [np.linalg.norm(W_RAMP * (x_s - x)) / np.linalg.norm(a) for x_s in xs]
        assert vals["max_sensitivity"][i] == pytest.approx(max(sens), rel=1e-4)
        assert vals["avg_sensitivity"][i] == pytest.approx(np.mean(sens), rel=1e-4)

        def rel(u, v):
            return np.linalg.norm((u - v) / np.where(u == 0, 1e-6, u))

        ris = [rel(a, W_RAMP * x_s) / max(rel(x, x_s), 1e-6) for x_s in xs]
        assert vals["relative_input_stability"][i] == pytest.approx(max(ris), rel=1e-3)
        h = np.array([0.0, 50 + a.sum()])
        ros = [rel(a, W_RAMP * x_s) / max(rel(h, np.array([0.0, 50 + (W_RAMP * x_s).sum()])), 1e-6) for x_s in xs]
        assert vals["relative_output_stability"][i] == pytest.approx(max(ros), rel=1e-3)


def test_noise_metrics_keep_only_label_preserving_samples_on_images():
    # bias 0.4375 puts the signed image's logit at exactly 0 (Σ W·x = -0.4375): noise flips about half
    # of its samples; the all-ones image has range 0, so its noise radius is 0 and all 8 are kept
    _, _, ctx = run_metric(task4("patch", bias=0.4375), M("max_sensitivity")(n_samples=8), E("saliency")())
    m = M("max_sensitivity")(n_samples=8)
    m.score(ctx, m.plan(ctx))
    assert m.notes["perturbations"] == 16 and 8 < m.notes["kept"] < 16


def test_stability_metrics_apply_to_every_modality_but_discrete_edits_to_text(linear_task):
    from helpers_dense import TAB_TASK
    from xbench.tasks.catalogue import parse_task
    from xbench.tasks.task import load_task

    tab = load_task(parse_task(dict(TAB_TASK), "tab.yaml"))
    for task in (task4(), tab, linear_task):
        for name in ("max_sensitivity", "relative_output_stability", "explainer_seed_stability"):
            assert M(name)().applies_to(task, E("lime")()), (name, task.spec.modality)
    assert not M("discrete_stability_spearman")().applies_to(task4(), E("lime")())
    v, err, _ = run_metric(tab, M("avg_sensitivity")(n_samples=2), E("integrated_gradients")(), targets=[1, 1, 1])
    assert all(e is None or e.startswith("no perturbation kept") for e in err) and np.isfinite(v).any()


def test_sanity_and_seed_stability_on_a_cnn(shapes):
    task = shapes
    task_small = replace(task, examples=task.examples[:6])
    targets = task.model.forward_array(np.stack([ex.x for ex in task_small.examples])).argmax(1)
    v, err, ctx = run_metric(task_small, M("randomization_cascade")(), E("grad_cam")(), targets)
    assert err == [None] * 6 and np.all(np.abs(v) <= 1)
    m = M("randomization_cascade")()
    m.score(ctx, m.plan(ctx))
    assert m.notes["stages"] == ["fc", "conv2", "conv1"]
    full, _, _ = run_metric(task_small, M("randomization_full")(), E("saliency")(), targets)
    assert np.mean(full) < 0.9  # saliency of a random CNN is not the trained one's
    logit, err, _ = run_metric(task_small, M("random_logit")(), E("integrated_gradients")(), targets)
    assert err == [None] * 6 and np.all(np.abs(logit) <= 1)
    seed, err, _ = run_metric(task_small, M("explainer_seed_stability")(n_seeds=2), E("lime")(n_samples=50), targets)
    assert err == [None] * 6 and np.all((-1 <= seed) & (seed < 1))


def test_normalised_aopc_does_not_apply_to_images():
    assert not M("comprehensiveness_normalized")().applies_to(task4(), E("saliency")())
    assert not M("sufficiency_normalized")().applies_to(task4(), E("saliency")())


def test_gold_is_the_top_left_patch():  # guards the helpers every hand computation above relies on
    assert task4().examples[0].rationale.tolist() == GOLD.reshape(-1).tolist()


def test_trained_weights_do_not_depend_on_the_process_thread_count(tmp_path, monkeypatch):
    """A small CNN trained in a 1-thread and in a 2-thread process gets the same weights, because
    training is pinned to ``TRAIN_THREADS``; unpinned, the backward pass's thread split shows."""
    from xbench.models import loop
    from xbench.tasks.task import weights_hash
    from xbench.tasks.catalogue import parse_task
    from xbench.tasks.task import load_task

    spec = parse_task({"name": "shapes-mini", "modality": "image", "replacement": "zero",
                       "dataset": {"source": "synthetic-shapes", "params": {"n_train": 512, "n_test": 16, "size": 16}},
                       "model": {"source": "train-cnn", "params": {"channels": [8, 16], "epochs": 1},
                                 "min_accuracy": 0.0}}, "shapes-mini.yaml")

    def weights(threads: int, pinned: bool) -> str:
        monkeypatch.setattr(loop, "TRAIN_THREADS", 1 if pinned else None)
        monkeypatch.setenv("XBENCH_CACHE", str(tmp_path / f"{threads}-{pinned}"))  # a fresh cache: train
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return weights_hash(load_task(spec, n=4).model.model)
        finally:
            torch.set_num_threads(before)

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 CPU cores to show the thread split")
    assert weights(1, True) == weights(2, True)
    assert weights(1, False) != weights(2, False)  # what the pin prevents
