"""The lm modality against answers known on paper (the hand-set copy model of ``helpers_lm``) and
against transformers called directly (a tiny random GPT-2)."""
import math

import numpy as np
import pytest
import torch

from helpers import run_metric, score
from helpers_lm import BETA, COPY_TASK, KV_WORDS
from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer
from xbench.features.lm import Readout, readout_columns
from xbench.metrics.base import Metric
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task, targets_for

V = 4 + len(KV_WORDS)  # specials + words
Z = math.log(math.exp(BETA) + V - 1)  # log-partition with one token at β
LP_FULL = BETA - Z          # log p(v5) on the whole prompt
LP_NO_MATCH = -math.log(V)  # no position matches: uniform
LP_MASKED_VALUE = -Z        # v5 masked: the mass moves onto [MASK]


def task(**over):
    return load_task(parse_task({**COPY_TASK, **over}, "<copy>"))


def test_readout_columns_by_hand():
    logits = torch.log(torch.tensor([[[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]]]))  # (1, L=2, V=3), already normalised
    lengths = torch.tensor([2])
    nt = readout_columns(logits, lengths, [Readout("next_token", (1,))])  # read at the last position
    assert nt[0].tolist() == pytest.approx([math.log(0.3), math.log(0.5)])
    cont = readout_columns(logits, lengths, [Readout("continuation", (2, 0))])  # token 2 at pos 0, token 0 at pos 1
    s = math.log(0.7) + math.log(0.5)
    # best one-token deviation: step 0 (0.2 instead of 0.7) or step 1 (0.3 instead of 0.5)
    assert cont[0].tolist() == pytest.approx([s, s + max(math.log(0.2 / 0.7), math.log(0.3 / 0.5))])
    con = readout_columns(logits, lengths, [Readout("contrastive", (0,), foil=2)])
    assert con[0].tolist() == pytest.approx([math.log(0.5 / 0.2), 0.0])


def test_copy_model_scores_by_hand():
    t = task(target="label")
    ex = t.examples[0]
    assert ex.features == "k1 v3 , k2 v5 , ? k2".split()
    assert ex.feature_ids[0] == -1  # [BOS] is never a feature
    out = t.model.outputs([ex.row()], "logit")[0]
    assert out[0] == pytest.approx(LP_FULL, abs=1e-5)
    assert out[1] == pytest.approx(-Z, abs=1e-5)  # best other token: log p = 0 - Z
    assert t.model.outputs([ex.row()], "probability")[0, 0] == pytest.approx(math.exp(LP_FULL), abs=1e-6)


def test_removal_keeps_special_tokens_and_answer_fixed():
    t = task(lm_target="continuation", target="label")
    t.examples = [t.examples[0].with_answer((t.examples[0].expected[0], 6), None, 0)]  # v5 then ','
    ex = t.examples[0]
    rows, keys = t.removal.apply(ex, np.zeros((1, ex.n_features), bool))
    ids = rows[0][0]
    assert ids[0] == 2 and ids[-1] == ex.input_ids[-1]  # [BOS] and the teacher-forced answer token stay
    assert (ids[1:-1] == 3).all()  # every prompt token is [MASK]
    d = type(t.removal)("delete", t.model.tokenizer)
    rows, _ = d.apply(ex, np.zeros((1, ex.n_features), bool))
    assert rows[0][0].tolist() == [2, int(ex.input_ids[-1])]  # positions shift, answer and BOS kept


def test_continuation_sums_teacher_forced_log_probs():
    t = task(lm_target="continuation", target="label")
    ex = t.examples[0]
    comma = t.model.tokenizer.convert_tokens_to_ids(",")
    ex2 = ex.with_answer((ex.expected[0], comma), None, 0)
    # step 1 reads at the appended v5: its previous-token match is the ',' after the context's v5
    assert t.model.outputs([ex2.row()], "logit")[0, 0] == pytest.approx(2 * LP_FULL, abs=1e-5)


def test_contrastive_is_log_prob_difference():
    t = task(lm_target="contrastive", target="label")
    out = t.model.outputs([t.examples[0].row()], "logit")[0]
    assert out[0] == pytest.approx(BETA, abs=1e-5)  # log p(v5) - log p(v3) = (β - Z) - (0 - Z)
    assert t.model.outputs([t.examples[0].row()], "probability")[0, 0] == pytest.approx(1 / (1 + math.exp(-BETA)))


def test_greedy_answer_and_label():
    t = task()  # target: predicted: the model's greedy next token, which is the dataset's answer here
    eng = t.engine()
    targets, pred, probs = targets_for(t, eng)
    assert targets.tolist() == [0, 0] and pred.tolist() == [0, 0]
    tok = t.model.tokenizer
    assert [tok.convert_ids_to_tokens(ex.readout.answer[0]) for ex in t.examples] == ["v5", "v3"]
    assert [ex.label for ex in t.examples] == [0, 0]  # the model's answer is the dataset's
    wrong = task(dataset={"source": "test-kv-records", "params": {"answer": "v1"}})
    assert wrong.examples[0].label == 1  # greedy v5 differs from the dataset's v1


def test_occlusion_by_hand():
    t = task(target="label")
    out = Explainer.registry.get("occlusion")().explain(t, t.examples[:1], [0], 0)
    a = out.attributions[0]
    # features: k1 v3 , k2 v5 , ? k2
    expected = [0, 0, 0, LP_FULL - LP_NO_MATCH, LP_FULL - LP_MASKED_VALUE, 0, 0, LP_FULL - LP_NO_MATCH]
    assert a == pytest.approx(expected, abs=1e-5)


def test_comprehensiveness_and_decision_flip_by_hand():
    t = task(target="label")
    attrs = [[0, 0, 0, 2.0, 3.0, 0, 0, 1.0]]  # v5 first, then the context key
    v, err = score(t, Metric.registry.get("comprehensiveness")(bins=[0.125, 0.25]), attrs, targets=[0])
    p = math.exp(LP_FULL)
    # remove v5: mass on [MASK]; remove v5 and k2: no match, uniform
    assert v[0] == pytest.approx(np.mean([p - math.exp(LP_MASKED_VALUE), p - 1 / V]), abs=1e-6)
    v, _ = score(t, Metric.registry.get("decision_flip")(), attrs, targets=[0])
    assert v[0] == pytest.approx(1 / 8)  # removing v5 alone makes another token ([MASK]) greedy


def test_plausibility_of_occlusion():
    t = task(target="label", perturb_segments=[0],
             dataset={"source": "test-kv-records", "params": {"question_segment": True}})
    t.examples = t.examples[:1]
    vals, errs, _ = run_metric(t, Metric.registry.get("token_f1")(), Explainer.registry.get("occlusion")(), targets=[0])
    # occlusion: v5 β, the context's k2 β - Z + log V, every distractor 0: its top 2 are the gold pair
    assert errs == [None] and vals.tolist() == [1.0]
    vals, _, _ = run_metric(t, Metric.registry.get("token_f1")(), Explainer.registry.get("random")(), targets=[0])
    assert vals[0] < 1.0  # a random ranking does not find both


def test_gradient_explainers_differentiate_the_target_log_prob():
    t = task(target="label")
    ex = t.examples[0]
    out = Explainer.registry.get("input_x_gradient")().explain(t, [ex], [0], 0)
    # reference: autograd of log p(v5) at the last position wrt one-hot inputs, by torch directly
    e = torch.eye(V)[torch.from_numpy(ex.input_ids)][None].requires_grad_()
    logits = t.module(inputs_embeds=e).logits[0, -1]
    torch.log_softmax(logits, -1)[ex.readout.answer[0]].backward()
    ref = (e.grad * e).detach().sum(-1)[0].numpy()[ex.feature_ids >= 0]
    assert out.attributions[0] == pytest.approx(ref, abs=1e-6)
    assert np.abs(ref).max() > 0.1


def test_chat_template_features_are_the_users_tokens():
    t = task(chat_template=True, target="label")
    ex = t.examples[0]
    tok = t.model.tokenizer
    assert ex.features == "k1 v3 , k2 v5 , ? k2".split()
    fixed = [tok.convert_ids_to_tokens(int(i)) for i, f in zip(ex.input_ids, ex.feature_ids) if f < 0]
    assert fixed == ["[UNK]", "[UNK]", "[UNK]"]  # <user>, </user>, <assistant>: template, never features
    assert len(ex.input_ids) == ex.n_features + 3


def test_attention_reads_the_query_row():
    t = task(target="label")
    a = Explainer.registry.get("attention")().explain(t, t.examples[:1], [0], 0).attributions[0]
    assert a.tolist() == pytest.approx([0, 0, 0, 0, 1, 0, 0, 0])  # the query attends to v5 alone


@pytest.mark.parametrize("over, message", [
    ({"dataset": {"source": "test-kv-records", "params": {"answer": "v5 v3"}}}, "example a: the answer 'v5 v3' is 2 tokens"),
    ({"lm_target": "contrastive", "dataset": {"source": "test-kv-records", "params": {"answer": "v3"}}},
     "example a: the foil 'v3' is the answer"),
    ({"replacement": "eos"}, "field 'replacement': the tokenizer has no eos token"),
])
def test_bad_input_one_line(over, message):
    with pytest.raises(XBenchError, match=message) as e:
        task(target="label", **over)
    assert "\n" not in str(e.value)


def test_lm_fields_only_for_lm_tasks():
    with pytest.raises(XBenchError, match="field 'lm_target' is for generative tasks"):
        parse_task({**COPY_TASK, "modality": "text", "lm_target": "next_token"}, "<t>")


def test_prompt_longer_than_context():
    from helpers_lm import CopyLM, word_tokenizer

    tok = word_tokenizer(KV_WORDS)
    with pytest.raises(XBenchError, match="example a: the prompt and answer are 9 tokens, longer than the model's context of 4"):
        load_task(parse_task(COPY_TASK, "<copy>"), model=(CopyLM(len(tok), n_positions=4), tok, {}))


def test_model_without_lm_head():
    from transformers import BertConfig, BertForSequenceClassification

    from helpers_lm import word_tokenizer

    tok = word_tokenizer(KV_WORDS)
    m = BertForSequenceClassification(BertConfig(vocab_size=len(tok), hidden_size=8, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=8))
    with pytest.raises(XBenchError, match="has no language-modelling head"):
        load_task(parse_task(COPY_TASK, "<copy>"), model=(m, tok, {}))


# -- a real architecture: GPT-2 from transformers ----------------------------------------------------

@pytest.fixture(scope="module")
def gpt2_task():
    from transformers import GPT2Config, GPT2LMHeadModel

    from helpers_lm import word_tokenizer
    from xbench.core.seeding import isolated_global_rng

    tok = word_tokenizer(KV_WORDS)
    with isolated_global_rng(0):
        m = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=2, n_head=2, n_positions=32,
                                       bos_token_id=2, eos_token_id=2, attn_implementation="eager"))
    return m, tok


def test_gpt2_outputs_equal_transformers(gpt2_task):
    m, tok = gpt2_task
    t = load_task(parse_task({**COPY_TASK, "replacement": "delete"}, "<g>"), model=(m, tok, {}))
    ex = t.examples[1]
    with torch.no_grad():
        ref = torch.log_softmax(m(torch.from_numpy(ex.input_ids)[None]).logits[0, -1], -1)
        # the greedy answer is HF's generate, greedy
        gen = m.generate(torch.from_numpy(ex.input_ids)[None], max_new_tokens=1, do_sample=False,
                         pad_token_id=0)[0, -1]
    assert ex.readout.answer == (int(gen),)
    # rows of other lengths in the same batch (right-padded) do not change a row's scores
    rows, _ = t.removal.apply(ex, np.array([[True] * ex.n_features, [False] * 3 + [True] * (ex.n_features - 3)]))
    out = t.model.outputs(rows, "logit")
    assert out[0, 0] == pytest.approx(float(ref[ex.readout.answer[0]]), abs=1e-5)
    masked = ref.clone()
    masked[ex.readout.answer[0]] = -float("inf")
    assert out[0, 1] == pytest.approx(float(masked.max()), abs=1e-5)
    with torch.no_grad():  # delete: the same as running the shortened sequence alone
        short = torch.log_softmax(m(torch.from_numpy(rows[1][0])[None]).logits[0, -1], -1)
    assert out[1, 0] == pytest.approx(float(short[ex.readout.answer[0]]), abs=1e-5)


@pytest.mark.parametrize("name", ["saliency", "integrated_gradients", "gradient_shap", "smoothgrad", "occlusion",
                                  "lime", "kernel_shap", "attention", "attention_rollout", "random"])
def test_every_explainer_runs_on_a_causal_lm(gpt2_task, name):
    m, tok = gpt2_task
    t = load_task(parse_task(COPY_TASK, "<g>"), model=(m, tok, {}))
    e = Explainer.registry.get(name)()
    assert e.applies_to(t) if hasattr(e, "applies_to") else True
    out = e.explain(t, t.examples, [0, 0], 0)
    assert out.errors == [None, None]
    assert [len(a) for a in out.attributions] == [ex.n_features for ex in t.examples]
    assert all(np.isfinite(a).all() for a in out.attributions)


def test_tokens_processed_counts_row_lengths():
    t = task(target="label")
    ex = t.examples[0]  # 9 tokens: [BOS] and 8 words
    out = Explainer.registry.get("occlusion")().explain(t, [ex], [0], 0)
    assert out.forward[0] == 1 + ex.n_features  # the whole prompt, then each word removed
    assert out.tokens[0] == out.forward[0] * len(ex.input_ids)
    d = load_task(parse_task({**COPY_TASK, "replacement": "delete", "target": "label"}, "<copy>"))
    out = Explainer.registry.get("occlusion")().explain(d, d.examples[:1], [0], 0)
    assert out.tokens[0] == len(ex.input_ids) + ex.n_features * (len(ex.input_ids) - 1)  # one token fewer each


@pytest.mark.parametrize("name", ["input_x_gradient", "occlusion"])
def test_per_step_attributions_sum_to_the_continuation(gpt2_task, name):
    from xbench.explainers.steps import step_attributions

    m, tok = gpt2_task
    t = load_task(parse_task({**COPY_TASK, "lm_target": "continuation", "max_new_tokens": 3}, "<g>"), model=(m, tok, {}))
    ex = t.examples[0]
    assert len(ex.readout.answer) == 3
    e = Explainer.registry.get(name)()
    rows = step_attributions(e, t, ex)
    assert rows.shape == (3, ex.n_features)
    whole = e.explain(t, [ex], [0], 0).attributions[0]
    assert rows.sum(0) == pytest.approx(whole, abs=1e-5)  # log-probabilities add up over the steps
    assert not np.allclose(rows[0], rows[1])


def test_question_segment_is_fixed():
    t = task(target="label", perturb_segments=[0],
             dataset={"source": "test-kv-records", "params": {"question_segment": True}})
    ex = t.examples[0]
    assert ex.features == "k1 v3 , k2 v5 ,".split()  # '? k2' is the question: fixed, never a feature
    assert len(ex.input_ids) == 9 and ex.rationale.tolist() == [0, 0, 0, 1, 1, 0]
    a = Explainer.registry.get("occlusion")().explain(t, [ex], [0], 0).attributions[0]
    assert a == pytest.approx([0, 0, 0, LP_FULL - LP_NO_MATCH, LP_FULL - LP_MASKED_VALUE, 0], abs=1e-5)


def test_max_examples_caps_the_run():
    assert len(task(max_examples=1).examples) == 1
    assert len(load_task(parse_task({**COPY_TASK, "max_examples": 5}, "<c>"), n=1).examples) == 1


@pytest.mark.parametrize("name", ["max_sensitivity", "relative_input_stability", "relative_output_stability",
                                  "random_logit", "randomization_cascade", "explainer_seed_stability"])
def test_stability_and_sanity_metrics_run_on_a_causal_lm(gpt2_task, name):
    m, tok = gpt2_task
    t = load_task(parse_task(COPY_TASK, "<g>"), model=(m, tok, {}))
    metric = Metric.registry.get(name)(**({"n_samples": 2} if "sensitivity" in name or "relative" in name else {}))
    vals, errs, _ = run_metric(t, metric, Explainer.registry.get("gradient_shap")(), targets=[0, 0])
    assert errs == [None, None], errs
    assert np.isfinite(vals).all()


def test_contrastive_predicted_takes_the_one_the_model_prefers():
    # the dataset says v3 against v5; the copy model prefers v5 (log p(v5) - log p(v3) = β)
    t = task(lm_target="contrastive", dataset={"source": "test-kv-records", "params": {"answer": "v3", "foil": "v5"}})
    tok = t.model.tokenizer
    a, b = t.examples
    assert tok.convert_ids_to_tokens([a.readout.answer[0], a.readout.foil]) == ["v5", "v3"] and a.label == 1
    assert tok.convert_ids_to_tokens([b.readout.answer[0], b.readout.foil]) == ["v3", "v1"] and b.label == 0
    assert t.model.outputs([a.row()], "logit")[0, 0] == pytest.approx(BETA, abs=1e-5)
