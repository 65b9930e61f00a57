"""Explainers without the global-RNG fork, and batched explaining (``batch_examples``, opt-in).

- The deterministic methods (Saliency, InputXGradient, Integrated Gradients, Occlusion) draw nothing
  from the global RNGs, so skipping :func:`isolated_global_rng` cannot change their numbers: they
  leave the global state as it was and do not depend on it, and give exactly the numbers of a call
  inside the fork.
- ``batch_examples`` stays out of ``params`` (configs, hashes, cache keys) unless set to more than 1.
- Batched calls give the one-at-a-time numbers up to the last bits (on the default models the CPU
  kernels differ with the batch size; measured here, hence opt-in), the same pass counts, per-example
  seeds, and per-example failures (a failing batch is explained again one example at a time).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xbench.core.errors import XBenchError
from xbench.core.seeding import derive_seed
from xbench.explainers.base import Explainer, batch_key
from xbench.explainers.gradient import Saliency

E = Explainer.registry.get
DETERMINISTIC = ["saliency", "input_x_gradient", "integrated_gradients", "occlusion"]
BATCHABLE = ["saliency", "input_x_gradient", "integrated_gradients"]


def explain(task, x, targets=None, **kw):
    targets = [1] * len(task.examples) if targets is None else targets
    return x.explain(task, task.examples, list(targets), 0, **kw)


def stacked(e):
    return np.concatenate(e.attributions)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """The shipped image task and its CNN (trained once per module in the session's private cache)."""
    from conftest import _session_cache
    from xbench.tasks.catalogue import resolve_task
    from xbench.tasks.task import load_task

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XBENCH_CACHE", _session_cache(tmp_path_factory))
        return load_task(resolve_task("synthetic-shapes"), n=24)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    """The shipped text task and its small BERT."""
    from conftest import _session_cache
    from xbench.tasks.catalogue import resolve_task
    from xbench.tasks.task import load_task

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XBENCH_CACHE", _session_cache(tmp_path_factory))
        return load_task(resolve_task("synthetic-sentiment"), n=24)


def predicted(task):
    from xbench.tasks.task import targets_for

    return targets_for(task, task.engine())[0].tolist()


# --- no fork for methods that draw nothing ---------------------------------------------------------

@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_explainers_neither_draw_from_nor_depend_on_the_global_rng(linear_task, name):
    x = E(name)()
    assert not x.draws_global_rng
    torch.manual_seed(1)
    np.random.seed(1)
    t_state, n_state = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    a = stacked(explain(linear_task, x))
    assert torch.equal(t_state, torch.random.get_rng_state())  # nothing drawn
    assert np.array_equal(n_state, np.random.get_state()[1])
    torch.manual_seed(2)
    np.random.seed(2)
    np.testing.assert_array_equal(a, stacked(explain(linear_task, x)))


@pytest.mark.parametrize("name", ["smoothgrad", "gradient_shap", "lime", "kernel_shap"])
def test_samplers_still_fork_the_global_rng(linear_task, name):
    x = E(name)()
    assert x.draws_global_rng
    t_state = torch.random.get_rng_state()
    a = stacked(explain(linear_task, x))
    assert torch.equal(t_state, torch.random.get_rng_state())
    torch.manual_seed(123)
    np.testing.assert_array_equal(a, stacked(explain(linear_task, x)))  # seeded by the example, not the caller


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_without_the_fork_the_numbers_are_those_with_it(linear_task, shapes, name):
    for task, targets in ((linear_task, None), (shapes, predicted(shapes))):
        forked = E(name)()
        forked.draws_global_rng = True  # the old path: every call inside isolated_global_rng
        np.testing.assert_array_equal(stacked(explain(task, forked, targets)), stacked(explain(task, E(name)(), targets)))


# --- batch_examples: an opt-in parameter --------------------------------------------------------------

@pytest.mark.parametrize("name", BATCHABLE)
def test_batch_examples_is_opt_in_and_absent_from_default_params(name):
    cls = E(name)
    assert "batch_examples" not in cls.params
    assert cls().p == cls.params and cls(batch_examples=1).p == cls.params
    assert cls().batch_examples == 1
    x = cls(batch_examples=8)
    assert x.p == {**cls.params, "batch_examples": 8} and x.batch_examples == 8
    for bad in (0, -2, 1.5, True, "8"):
        with pytest.raises(XBenchError, match="batch_examples"):
            cls(batch_examples=bad)


@pytest.mark.parametrize("name", ["smoothgrad", "gradient_shap", "occlusion", "lime", "grad_cam", "attention"])
def test_methods_that_do_not_batch_have_no_batch_examples(name):
    with pytest.raises(XBenchError, match="no parameter 'batch_examples'"):
        E(name)(batch_examples=4)


def test_batch_key_groups_only_stackable_inputs(linear_task):
    inp = [linear_task.attribution_inputs(ex, 1, "input") for ex in linear_task.examples]
    keys = [batch_key(i) for i in inp]
    lengths = [len(ex.input_ids) for ex in linear_task.examples]
    for a in range(len(inp)):
        for b in range(len(inp)):
            assert (keys[a] == keys[b]) == (lengths[a] == lengths[b])
    from dataclasses import replace

    assert batch_key(replace(inp[0], additional_forward_args=(object(),))) is None  # e.g. a causal LM's readout
    assert batch_key(linear_task.attribution_inputs(linear_task.examples[0], 1, "presence")) is None


@pytest.mark.parametrize("name", BATCHABLE)
def test_batched_on_the_linear_model_matches_one_at_a_time(linear_task, name):
    one = explain(linear_task, E(name)())
    for b in (2, 3, 64):
        many = explain(linear_task, E(name)(batch_examples=b))
        assert many.params["batch_examples"] == b
        for a0, a1 in zip(one.attributions, many.attributions):
            np.testing.assert_allclose(a1, a0, rtol=1e-6, atol=1e-7)
        assert many.forward.sum() == one.forward.sum() and many.backward.sum() == one.backward.sum()
        assert many.tokens.sum() == one.tokens.sum()
        assert many.errors == one.errors and np.all(many.seconds > 0)


@pytest.mark.parametrize("name", BATCHABLE)
@pytest.mark.parametrize("task_name", ["shapes", "sentiment"])
def test_batched_on_the_default_models_matches_up_to_float32_rounding(request, name, task_name):
    """The check that makes batching opt-in: on the shipped CNN and BERT a batched captum call gives
    the one-at-a-time attributions up to float32 rounding, not bit for bit (CPU kernels take other
    paths for other batch sizes, as for the perturbation engine's MIN_ROWS)."""
    task = request.getfixturevalue(task_name)
    targets = predicted(task)
    one = explain(task, E(name)(), targets)
    many = explain(task, E(name)(batch_examples=8), targets)
    scale = max(float(np.max(np.abs(stacked(one)))), 1e-12)
    np.testing.assert_allclose(stacked(many), stacked(one), rtol=0, atol=1e-4 * scale)
    assert many.forward.sum() == one.forward.sum() and many.backward.sum() == one.backward.sum()
    assert all(e is None for e in many.errors)


def test_extra_seeds_give_each_example_the_seed_of_its_own_call(linear_task):
    seen = []

    class Recording(Saliency):
        def attribute(self, inputs, seed):
            seen.append(seed)
            return super().attribute(inputs, seed)

    x = Recording()
    parts = [("noise", k) for k in range(len(linear_task.examples))]
    explain(linear_task, x, extra_seeds=parts)
    expected = [derive_seed(linear_task.name, "saliency", "explain", ex.id, 0, *p)
                for ex, p in zip(linear_task.examples, parts)]
    assert seen == expected
    seen.clear()
    for ex, p in zip(linear_task.examples, parts):
        x.explain(linear_task, [ex], [1], 0, extra_seed=p)
    assert seen == expected
    with pytest.raises(ValueError, match="extra_seeds"):
        explain(linear_task, x, extra_seeds=parts[:1])


def test_a_failing_batch_is_explained_again_one_example_at_a_time(linear_task):
    class Flaky(Saliency):
        def attribute_batch(self, inputs, seeds):
            raise RuntimeError("batched call broke")

        def attribute(self, inputs, seed):
            if inputs.example.id == linear_task.examples[1].id:
                raise ValueError("this one is bad")
            return super().attribute(inputs, seed)

    out = explain(linear_task, Flaky(batch_examples=8))
    ref = explain(linear_task, E("saliency")())
    assert out.errors[1] == "explainer saliency failed: ValueError: this one is bad"
    assert np.all(np.isnan(out.attributions[1]))
    for i in (0, 2, 3):
        assert out.errors[i] is None
        np.testing.assert_array_equal(out.attributions[i], ref.attributions[i])  # one at a time: the default's numbers


def test_out_of_memory_in_a_batch_halves_batch_examples(linear_task):
    calls = []

    class Tight(Saliency):
        def attribute_batch(self, inputs, seeds):
            calls.append(len(inputs))
            if len(inputs) > 1:
                raise RuntimeError("CUDA out of memory (simulated)")
            return super().attribute_batch(inputs, seeds)

    from xbench.core.device import Runtime

    rt = Runtime()
    x = Tight(batch_examples=4)
    out = x.explain(linear_task, linear_task.examples, [1] * len(linear_task.examples), 0, runtime=rt)
    assert all(e is None for e in out.errors)
    assert x.p["batch_examples"] == 1 and {"where": "explainer saliency: batch_examples", "from": 2, "to": 1} in rt.backoffs
    ref = explain(linear_task, E("saliency")())
    for a0, a1 in zip(ref.attributions, out.attributions):
        np.testing.assert_array_equal(a1, a0)


def test_sanity_reexplanations_batch_too(linear_task):
    """Sanity metrics re-explain lists of examples through ``Context.reexplain``: with
    ``batch_examples`` they are batched like any explain call, and agree with one at a time."""
    from helpers import run_metric
    from xbench.metrics.base import Metric

    import xbench.metrics.sanity  # noqa: F401  (registers random_logit)

    for m in ("random_logit", "randomization_full"):
        v0, e0, _ = run_metric(linear_task, Metric.registry.get(m)(), E("input_x_gradient")())
        v1, e1, _ = run_metric(linear_task, Metric.registry.get(m)(), E("input_x_gradient")(batch_examples=8))
        assert e0 == e1
        np.testing.assert_allclose(v1, v0, rtol=1e-6, atol=1e-9)
