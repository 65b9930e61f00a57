"""train-gpt2: deterministic from its seed, cached, its tokenizer and its accuracy check."""
import pytest
import torch

from xbench.core.errors import XBenchError
from xbench.models.gpt2 import encode_lm, lm_accuracy
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task, weights_hash


def tiny(seed=0, min_accuracy=None, **params):
    model = {"source": "train-gpt2", "seed": seed,
             "params": {"n_embd": 16, "n_layer": 1, "n_head": 2, "n_inner": 32, "epochs": 1, **params}}
    if min_accuracy is not None:
        model["min_accuracy"] = min_accuracy
    return parse_task({"name": "tiny-kv", "modality": "lm", "rationale": True, "max_length": 32,
                       "perturb_segments": [0],
                       "dataset": {"source": "kv-retrieval", "params": {"n_train": 256, "n_test": 32}},
                       "model": model}, "tiny.yaml")


def test_deterministic_cached_and_seeded():
    a = load_task(tiny(), 4)
    assert a.info["model"]["cache"] == "miss"
    b = load_task(tiny(), 4)
    assert b.info["model"]["cache"] == "hit"
    assert weights_hash(a.model.model) == weights_hash(b.model.model)
    assert weights_hash(load_task(tiny(seed=1), 4).model.model) != weights_hash(a.model.model)


def test_tokenizer_puts_bos_first_and_keeps_words():
    t = load_task(tiny(), 2)
    tok, ex = t.model.tokenizer, t.examples[0]
    assert int(ex.input_ids[0]) == tok.bos_token_id and ex.feature_ids[0] == -1
    words = tok.convert_ids_to_tokens([int(i) for i in ex.input_ids[1:ex.n_prompt]])
    assert words[:ex.n_features] == ex.features and words[-2] == "?"  # the context, then the fixed question
    assert tok.mask_token == "[MASK]" and t.removal.token_id == tok.mask_token_id


def test_accuracy_reads_greedy_answers_by_hand():
    # a "model" whose next-token logits always favour token 7: right exactly where the answer is 7
    class Always7(torch.nn.Module):
        def forward(self, input_ids):
            logits = torch.zeros(*input_ids.shape, 10)
            logits[..., 7] = 1.0
            return type("Out", (), {"logits": logits})()

    ids = torch.tensor([[2, 5, 7], [2, 5, 6]])
    is_answer = torch.tensor([[False, False, True], [False, False, True]])
    assert lm_accuracy(Always7(), ids, is_answer) == 0.5


def test_min_accuracy_is_one_line():
    with pytest.raises(XBenchError, match=r"field 'model.min_accuracy': trained model reached 0\.\d+ held-out accuracy, "
                                          r"below 0.99") as e:
        load_task(tiny(min_accuracy=0.99), 2)
    assert "\n" not in str(e.value)


def test_encode_lm_marks_answer_and_prompt():
    t = load_task(tiny(), 2)
    from xbench.data import DatasetSource

    src = DatasetSource.registry.get("kv-retrieval")(n_train=4, n_test=2)
    splits = src.load(0)
    ids, is_answer, is_prompt = encode_lm(t.model.tokenizer, splits.test, splits.label_names, 32, "<t>")
    r = splits.test[0]
    n = len(r.all_words)
    assert int(is_prompt[0].sum()) == n and int(is_answer[0].sum()) == 1
    assert t.model.tokenizer.convert_ids_to_tokens(int(ids[0, n + 1])) == r.meta["answer"]
