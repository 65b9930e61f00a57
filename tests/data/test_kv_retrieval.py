"""``kv-retrieval`` (groundwork for generative tasks): the answer and the gold, checked by reading each
prompt back independently (the pairs before "?", the key after it)."""
import pytest

from xbench.core.errors import XBenchError
from xbench.data.kv import KeyValueRetrieval


def read_back(words):
    """(answer, gold positions) from the prompt's words alone."""
    q = words.index("?")
    pairs = [(i, words[i], words[i + 1]) for i in range(0, q, 3)]
    assert all(words[i + 2] == "," for i, _, _ in pairs)
    key = words[q + 1]
    (i, _, value), = [p for p in pairs if p[1] == key]
    return value, {i, i + 1}


@pytest.fixture(scope="module")
def splits():
    return KeyValueRetrieval(n_train=300, n_test=300).load(seed=2)


def test_answer_and_gold_are_the_queried_pair(splits):
    for r in splits.train + splits.test:
        value, gold = read_back(r.all_words)
        assert r.words_b == r.all_words[-2:] and r.words_b[0] == "?"
        assert splits.label_names[r.label] == value == r.meta["answer"]
        assert {i for i, g in enumerate(r.rationale) if g} == gold
        keys = r.all_words[0:r.all_words.index("?"):3]
        assert len(set(keys)) == len(keys)  # distinct keys: the query is unambiguous


def test_sizes_and_spread(splits):
    lengths = {len(r.all_words) for r in splits.test}
    assert min(lengths) == 3 * 2 + 2 and max(lengths) == 3 * 6 + 2
    assert len({r.label for r in splits.test}) == 8
    positions = {r.meta["query_pair"] for r in splits.test}
    assert positions == set(range(6))  # the queried pair can be anywhere


def test_seeded():
    a = KeyValueRetrieval(n_train=10, n_test=50).load(seed=0)
    b = KeyValueRetrieval(n_train=10, n_test=50).load(seed=0)
    c = KeyValueRetrieval(n_train=10, n_test=50).load(seed=1)
    assert [r.words for r in a.test] == [r.words for r in b.test] != [r.words for r in c.test]


@pytest.mark.parametrize("bad", [{"max_pairs": 20}, {"min_pairs": 0}, {"min_pairs": 5, "max_pairs": 3}])
def test_bad_params_are_one_line(bad):
    with pytest.raises(XBenchError, match="dataset.params"):
        KeyValueRetrieval(**bad).load(seed=0)
