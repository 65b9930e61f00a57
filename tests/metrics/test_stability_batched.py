"""The noise stability metrics' re-explanations, one at a time (default) and batched (opt-in).

- Default (``batch_examples`` unset): every kept noisy copy gets exactly the re-explanation it got
  before (one ``Context.reexplain`` call per sample, same seeds, inside the embedding-noise block
  for text), now requested for all examples in one ``explain`` call for images and tabular rows;
  checked bit for bit against that per-sample path on the shipped CNN and BERT, for a deterministic
  and a stochastic explainer.
- Batched: the noisy copies (all examples' for dense inputs; text: built under the noise, explained
  after the block) go through batched captum calls; the metric values agree with the default's to
  float32 rounding on the shipped models (not bit for bit: hence opt-in), the kept perturbations are
  the same, and on the analytic linear model they equal the values computed by hand.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import xbench.metrics.stability as st
from helpers import run_metric
from xbench.explainers.base import Explainer
from xbench.features.embedding_noise import embedding_noise
from xbench.metrics.base import Metric

E = Explainer.registry.get
M = Metric.registry.get
NOISE = ["max_sensitivity", "avg_sensitivity", "relative_input_stability", "relative_output_stability"]


def _load(tmp_path_factory, name, n):
    from conftest import _session_cache
    from xbench.tasks.catalogue import resolve_task
    from xbench.tasks.task import load_task

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XBENCH_CACHE", _session_cache(tmp_path_factory))
        return load_task(resolve_task(name), n=n)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return _load(tmp_path_factory, "synthetic-shapes", 12)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    return _load(tmp_path_factory, "synthetic-sentiment", 8)


def predicted(task):
    from xbench.tasks.task import targets_for

    return targets_for(task, task.engine())[0]


def per_sample(ctx, i, radius, n):
    """The re-explanations as the metrics made them before: one ``ctx.reexplain`` per kept sample (text:
    inside the noise block)."""
    ex = ctx.task.examples[i]
    runs = st._cache(ctx)[("noise", i, float(radius), int(n))]
    out = []
    for s in np.flatnonzero(runs.kept):
        if st.dense(ctx):
            noisy = ex.with_input(st.noisy_input(ctx, i, radius, s), f"{ex.id}~noise:{s}")
            a = ctx.reexplain([noisy], ctx.targets[i:i + 1], ctx.seed, None, "embedding_noise", int(s)).attributions[0]
        else:
            with embedding_noise(ctx.task.model, *st._noise(ctx, i, radius, s)):
                a = ctx.reexplain([ex], ctx.targets[i:i + 1], ctx.seed, None, "embedding_noise", s).attributions[0]
        out.append((runs.attrs[s], a))
    return out


@pytest.mark.parametrize("explainer", ["saliency", "smoothgrad", "occlusion"])
@pytest.mark.parametrize("task_name", ["shapes", "sentiment"])
def test_default_reexplanations_are_the_per_sample_ones_bit_for_bit(request, task_name, explainer):
    task = request.getfixturevalue(task_name)
    params = {"nt_samples": 4, "nt_samples_batch_size": 4} if explainer == "smoothgrad" else {}
    x = E(explainer)(**params)
    _, errors, ctx = run_metric(task, M("max_sensitivity")(), x, predicted(task))
    n_kept = 0
    for i in range(len(task.examples)):
        if errors[i] is None:
            for got, expected in per_sample(ctx, i, 0.05, 5):
                np.testing.assert_array_equal(got, expected)
                n_kept += 1
    assert n_kept > 0


@pytest.mark.parametrize("explainer", ["saliency", "input_x_gradient", "integrated_gradients"])
@pytest.mark.parametrize("task_name", ["shapes", "sentiment"])
def test_batched_noise_metrics_agree_with_the_default(request, task_name, explainer):
    task = request.getfixturevalue(task_name)
    targets = predicted(task)
    for name in NOISE:
        v0, e0, c0 = run_metric(task, M(name)(), E(explainer)(), targets)
        v1, e1, c1 = run_metric(task, M(name)(), E(explainer)(batch_examples=16), targets)
        assert e0 == e1
        assert [r.kept.tolist() for r in st._cache(c0).values()] == [r.kept.tolist() for r in st._cache(c1).values()]
        rtol = 1e-4 if "sensitivity" in name else 1e-2  # RIS/ROS divide by attribution entries near 0
        np.testing.assert_allclose(v1, v0, rtol=rtol, atol=1e-7)


def test_text_batching_happens_outside_the_noise_block_and_matches_by_hand(linear_task):
    """On the linear model a(x') = E'[ids, t]: batched re-explanations built under the noise and
    explained after the block give the values the per-sample path gives."""
    from xbench.core.seeding import torch_gen
    from xbench.features.embedding_noise import noisy_rows, weight

    linear_task.examples = linear_task.examples[:1]
    ex, n, radius, t = linear_task.examples[0], 8, 0.1, 1
    cols = ex.input_ids[ex.feature_ids >= 0]
    w0 = weight(linear_task.model).detach().double().numpy()
    rows = noisy_rows(linear_task.model, ex)
    e = w0[ex.input_ids]
    r = radius * float(e.max() - e.min())
    ratios = []
    for s in range(n):  # E' = E + U[-r, r] on the example's rows, drawn as embedding_noise documents
        u = torch.rand((len(rows), 2), generator=torch_gen(linear_task.name, "embedding_noise", ex.id, s, 0),
                       dtype=torch.float64)
        w1 = weight(linear_task.model).detach().clone()
        w1[rows] = w1[rows] + (u * (2 * r) - r).float()
        w1 = w1.double().numpy()
        if w1[ex.input_ids].sum(0).argmax() == e.sum(0).argmax():
            ratios.append(np.linalg.norm(w1[cols, t] - w0[cols, t]) / np.linalg.norm(w0[cols, t]))
    expected = max(ratios)
    x = E("input_x_gradient")(batch_examples=8)
    v, err, ctx = run_metric(linear_task, M("max_sensitivity")(radius=0.1, n_samples=n), x)
    assert st._text_batched(ctx) and err == [None]
    assert v[0] == pytest.approx(expected, rel=1e-5)
    v0, _, _ = run_metric(linear_task, M("max_sensitivity")(radius=0.1, n_samples=n), E("input_x_gradient")())
    assert v[0] == pytest.approx(v0[0], rel=1e-6)


def test_presence_space_and_unbatched_explainers_stay_inside_the_block(linear_task):
    _, _, ctx = run_metric(linear_task, M("max_sensitivity")(), E("occlusion")())
    assert not st._text_batched(ctx)
    _, _, ctx = run_metric(linear_task, M("max_sensitivity")(), E("saliency")())
    assert not st._text_batched(ctx)


def test_a_tied_output_layer_keeps_text_reexplanations_inside_the_block():
    """A model that reads its embedding matrix elsewhere (a tied output layer) would see other weights
    outside the noise block: no batching there."""
    class Tied(torch.nn.Module):
        def __init__(self, tie):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.head = torch.nn.Linear(4, 10, bias=False)
            if tie:
                self.head.weight = self.emb.weight

        def get_input_embeddings(self):
            return self.emb

    class Adapter:
        def __init__(self, tie):
            self.model = Tied(tie)

    assert st._reads_embeddings_only_by_id(Adapter(False))
    assert not st._reads_embeddings_only_by_id(Adapter(True))
