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
        def forward(self, input_ids, attention_mask=None):
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


def test_retrained_from_scratch_is_bitwise_identical(tmp_path, monkeypatch):
    """Not just a cache hit: the same seed trained again in an empty cache gives the same weights."""
    a = load_task(tiny(), 2)
    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path))
    b = load_task(tiny(), 2)
    assert b.info["model"]["cache"] == "miss" and b.info["model"]["cache_path"].startswith(str(tmp_path))
    assert weights_hash(a.model.model) == weights_hash(b.model.model)
    assert a.info["model"]["weights_sha256"] == b.info["model"]["weights_sha256"]


def test_curriculum_reads_the_shortest_sequences_first(monkeypatch, tmp_path):
    """The first curriculum_epochs x batches see only the shortest curriculum_share of the training
    sequences ([BOS] prompt answer); then every length."""
    import xbench.models.gpt2 as gpt2

    monkeypatch.setenv("XBENCH_CACHE", str(tmp_path))
    seen, real = [], gpt2.lm_loss
    monkeypatch.setattr(gpt2, "lm_loss", lambda logits, ids, *a: seen.append((ids != 0).sum(1).tolist()) or real(logits, ids, *a))
    spec = tiny(curriculum_share=0.25, curriculum_epochs=2, batch_size=16)
    load_task(spec, 1)
    from xbench.data import DatasetSource

    train = DatasetSource.registry.get("kv-retrieval")(n_train=256, n_test=32).load(0).train
    lengths = sorted(len(r.all_words) + 2 for r in train)  # + [BOS] + the answer
    cut = lengths[64 - 1]
    curriculum, rest = seen[:2 * 4], seen[2 * 4:]
    assert len(rest) == 256 // 16 and sorted(n for b in curriculum[:4] for n in b) == lengths[:64]
    assert max(n for b in curriculum for n in b) == cut < max(n for b in rest for n in b)
    assert sorted(n for b in rest for n in b) == lengths  # then one epoch over everything


def test_accuracy_is_teacher_forced_over_every_answer_token():
    class NextId(torch.nn.Module):  # predicts token t + 1 after token t
        def forward(self, input_ids, attention_mask=None):
            return type("Out", (), {"logits": torch.nn.functional.one_hot(input_ids + 1, 12).float()})()

    ids = torch.tensor([[2, 5, 6, 7], [2, 5, 6, 9], [2, 3, 0, 0]])
    is_answer = torch.tensor([[False, False, True, True], [False, False, True, True], [False, True, False, False]])
    # row 0: both answer tokens follow; row 1: its second (9 after 6) does not; row 2: one token, padded
    assert lm_accuracy(NextId(), ids, is_answer) == 2 / 3
