"""Each replacement policy writes its own token, everywhere features are removed: the metrics' engine,
the perturbation explainers (occlusion, LIME, KernelSHAP) and the gradient explainers' baselines. The
test model gives [MASK], [UNK] and [PAD] distinct non-zero weights, so a policy that wrote another
policy's token (or always [MASK]) gives other numbers; every expected value is computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from helpers import LINEAR_TASK, WEIGHTS
from xbench.explainers.base import Explainer
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task

SPECIAL = {"[MASK]": 0.5, "[UNK]": -0.25, "[PAD]": 0.125}
TOKEN = {"mask": "[MASK]", "unk": "[UNK]", "pad": "[PAD]", "delete": None}


def task_for(policy):
    spec = {**LINEAR_TASK, "replacement": policy, "model": {"source": "test-linear",
                                                            "params": {"special_weights": SPECIAL}}}
    return load_task(parse_task(spec, f"{policy}.yaml"))


def removed_logit(ex, gone: set[int], policy: str) -> float:
    """Class-1 logit of ``ex`` with the features ``gone`` removed, by hand: a removed word contributes
    its policy token's weight ([PAD]: attention 0, so nothing; delete: nothing)."""
    z = 0.0
    for f, word in enumerate(ex.features):
        if f not in gone:
            z += WEIGHTS[word]
        elif policy in ("mask", "unk"):
            z += SPECIAL[TOKEN[policy]]
    return z


class Rows:
    """Records the token ids of every row the model adapter evaluates."""

    def __init__(self, model):
        self.inner, self.ids = model.outputs, []
        model.outputs = self

    def __call__(self, rows, kind="logit", min_rows=0):
        self.ids += [np.asarray(r[0]).copy() for r in rows]
        return self.inner(rows, kind, min_rows)


@pytest.mark.parametrize("policy", ["mask", "unk", "pad", "delete"])
def test_the_engine_writes_the_policys_token(policy):
    task = task_for(policy)
    tok = task.model.tokenizer
    assert task.removal.token_id == tok.convert_tokens_to_ids(TOKEN[policy] or "[PAD]")  # delete: [PAD] baseline
    ex = task.examples[0]  # "great fine the bad"
    engine = task.engine()
    keep = np.ones((1, ex.n_features), bool)
    keep[0, 0] = False  # remove "great"
    h = engine.submit(ex, keep)
    engine.run()
    assert engine.logits(h)[0, 1] == pytest.approx(removed_logit(ex, {0}, policy), abs=1e-6)
    (ids,) = [r[0] for r in task.removal.apply(ex, keep)[0]]
    cls, sep = tok.cls_token_id, tok.sep_token_id
    assert ids[0] == cls and ids[-1] == sep  # special tokens never move
    if policy == "delete":
        assert len(ids) == len(ex.input_ids) - 1
    else:
        assert ids[1] == task.removal.token_id


@pytest.mark.parametrize("policy", ["mask", "unk", "pad"])
def test_occlusion_lime_and_kernelshap_remove_with_the_policys_token(policy):
    task = task_for(policy)
    ex = task.examples[0]
    want = task.removal.token_id
    special = {task.model.tokenizer.convert_tokens_to_ids(t) for t in SPECIAL}
    rec = Rows(task.model)
    occ = Explainer.registry.get("occlusion")().explain(task, [ex], [1]).attributions[0]
    # occlusion of feature f on the class-1 logit: w_f − (policy token's weight, or 0 for [PAD])
    for f, word in enumerate(ex.features):
        assert occ[f] == pytest.approx(removed_logit(ex, set(), policy) - removed_logit(ex, {f}, policy), abs=1e-6)
    for name in ("lime", "kernel_shap"):
        Explainer.registry.get(name)(n_samples=20).explain(task, [ex], [1])
    seen = {int(t) for ids in rec.ids for t in ids[1:-1]} & special
    assert seen == {want}, f"{policy}: removed tokens written as {seen}, expected {{{want}}}"


@pytest.mark.parametrize("policy", ["mask", "unk", "pad", "delete"])
def test_gradient_baselines_are_the_policys_token_embedding(policy):
    task = task_for(policy)
    ex = task.examples[0]
    inputs = task.attribution_inputs(ex, 1, "input")
    emb = task.model.model.get_input_embeddings().weight.detach()
    token = TOKEN[policy] or "[PAD]"  # delete writes nothing: its reference input is [PAD]
    tid = task.model.tokenizer.convert_tokens_to_ids(token)
    base = inputs.baselines[0].detach()
    for j in range(len(ex.input_ids)):
        expected = emb[tid] if ex.feature_ids[j] >= 0 else emb[int(ex.input_ids[j])]
        assert base[j].tolist() == expected.tolist(), (policy, j)
    # Integrated Gradients from that baseline: completeness on the class-1 logit, by hand
    ig = Explainer.registry.get("integrated_gradients")().explain(task, [ex], [1]).attributions[0]
    # (gradient inputs attend to every position, so the [PAD] baseline's weight counts too)
    total = sum(WEIGHTS[w] for w in ex.features) - len(ex.features) * SPECIAL[token]
    assert ig.sum() == pytest.approx(total, abs=1e-5)
