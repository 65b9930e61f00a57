"""Perturbation in token-id space, and the shared engine's deduplication and batching."""
import numpy as np
import pytest

from helpers import fixed_explanations
from xbench.metrics.base import Context, Metric
from xbench.features.engine import PerturbationEngine
from xbench.features.text import TextRemoval, materialize


def test_policies_in_token_id_space(linear_task):
    ex = linear_task.examples[0]  # [CLS] great fine the bad [SEP]
    keep = np.array([[True, False, True, False]])
    ids = ex.input_ids
    (m_ids, m_att, _), = materialize(ex, keep, "mask", 4)
    assert m_ids.tolist() == [ids[0], ids[1], 4, ids[3], 4, ids[5]] and m_att.tolist() == [1] * 6
    (u_ids, _, _), = materialize(ex, keep, "unk", 1)
    assert u_ids.tolist() == [ids[0], ids[1], 1, ids[3], 1, ids[5]]
    (p_ids, p_att, _), = materialize(ex, keep, "pad", 0)
    assert p_ids.tolist() == [ids[0], ids[1], 0, ids[3], 0, ids[5]] and p_att.tolist() == [1, 1, 0, 1, 0, 1]
    (d_ids, d_att, _), = materialize(ex, keep, "delete", 0)
    assert d_ids.tolist() == [ids[0], ids[1], ids[3], ids[5]] and d_att.tolist() == [1] * 4


def test_special_tokens_are_never_removed(linear_task):
    ex = linear_task.examples[0]
    for policy in ("mask", "pad", "unk", "delete"):
        (ids, _, _), = materialize(ex, np.zeros((1, 4), bool), policy, 4)
        assert ids[0] == ex.input_ids[0] and ids[-1] == ex.input_ids[-1]


def test_word_granularity_removes_all_subword_tokens(linear_task):
    from xbench.features.text import TextExample

    ex = TextExample("w", np.array([2, 10, 11, 12, 3]), np.array([-1, 0, 0, 1, -1]), 1, ["word", "other"])
    (ids, _, _), = materialize(ex, np.array([[False, True]]), "mask", 4)
    assert ids.tolist() == [2, 4, 4, 12, 3]


class Recorder:
    """Wraps the adapter's batch forward to record every evaluated row and batch."""

    def __init__(self, model):
        self.rows, self.batches, self._inner = [], [], model.outputs
        model.outputs = self

    def __call__(self, seqs, kind="logit", min_rows=0):
        self.batches.append([len(s[0]) for s in seqs])
        self.rows += [s[0].tobytes() + s[1].tobytes() for s in seqs]
        return self._inner(seqs, kind, min_rows)


@pytest.mark.parametrize("policy", ["mask", "delete"])
def test_no_input_is_evaluated_twice(linear_task, policy):
    task = linear_task
    task.spec = type(task.spec)(**{**task.spec.__dict__, "replacement": policy})
    rec = Recorder(task.model)
    engine = PerturbationEngine(task.model, TextRemoval(policy, task.model.tokenizer), batch_size=3)
    targets = np.ones(len(task.examples), dtype=int)
    metrics = [Metric.registry.get(n)() for n in ("comprehensiveness", "sufficiency", "deletion_auc",
                                                   "insertion_auc")]
    f0 = task.model.n_forward
    plans = []
    for expl_seed, scale in ((0, 1.0), (1, -1.0)):  # two "explainers" with opposite rankings
        attrs = [scale * np.arange(ex.n_features, 0, -1, dtype=float) for ex in task.examples]
        ctx = Context(task, fixed_explanations(task, attrs), targets, engine, seed=expl_seed)
        plans.append((ctx, [(m, m.plan(ctx)) for m in metrics]))
    engine.run()
    evaluated = task.model.n_forward - f0
    assert evaluated == engine.n_unique == len(rec.rows)
    assert len(set(rec.rows)) == len(rec.rows)  # nothing evaluated twice
    assert engine.n_requested > 2 * engine.n_unique  # the full and empty inputs recur in every metric
    lengths = [n for b in rec.batches for n in b]
    assert lengths == sorted(lengths)  # batched shortest first
    assert all(len(b) <= 3 for b in rec.batches)
    # a second round of the same requests costs nothing
    for ctx, pl in plans:
        for m, _ in pl:
            m.plan(ctx)
    engine.run()
    assert task.model.n_forward - f0 == evaluated
    for ctx, pl in plans:
        for m, states in pl:
            values, errors = m.score(ctx, states)
            assert np.isfinite(values).all() and not any(errors)


def test_full_input_count_matches_unique_inputs(linear_task):
    # one example, comprehensiveness with bins at 25/50/75/100%: 4 removals + the full input
    engine = linear_task.engine()
    linear_task.examples = linear_task.examples[:1]
    ctx = Context(linear_task, fixed_explanations(linear_task, [[4, 3, 2, 1]]), np.array([1]), engine)
    Metric.registry.get("comprehensiveness")(bins=[0.25, 0.5, 0.75, 1.0]).plan(ctx)
    Metric.registry.get("sufficiency")(bins=[0.25, 0.5, 0.75, 1.0]).plan(ctx)
    # sufficiency keeps top 1..4 (top-4 = the full input) and comprehensiveness removes top 1..4
    # (top-4 = the empty input); sufficiency's "top-4 kept" is the full input, already there
    f0 = linear_task.model.n_forward
    engine.run()
    assert linear_task.model.n_forward - f0 == engine.n_unique == 1 + 4 + 3
