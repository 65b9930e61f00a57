"""``modular-sum``: every prompt read back independently (the two d-words, summed mod n), the gold
checked to be exactly the deciding words (changing either operand changes the answer, changing a
filler word never does), and neither operand alone informative: over a split, the answer is
independent of each operand on its own."""
from collections import Counter

import pytest

from xbench.core.errors import XBenchError
from xbench.data.modsum import ModularSum


def read_back(words, n):
    """(answer, operand positions) from the words alone."""
    assert words[-1] == "="
    ops = [i for i, w in enumerate(words) if w[0] == "d" and w[1:].isdigit()]
    assert len(ops) == 2
    return f"r{sum(int(words[i][1:]) for i in ops) % n}", ops


@pytest.fixture(scope="module", params=[2, 4])
def splits(request):
    return request.param, ModularSum(n_train=800, n_test=800, n_values=request.param).load(seed=5)


def test_answer_and_gold_are_the_operands(splits):
    n, s = splits
    assert s.label_names == [f"r{i}" for i in range(n)]
    for r in s.train + s.test:
        answer, ops = read_back(r.words, n)
        assert s.label_names[r.label] == answer == r.meta["answer"]
        assert [i for i, g in enumerate(r.rationale) if g] == ops == sorted(r.meta["positions"])
        assert r.meta["foil"] != answer


def test_gold_is_exactly_the_deciding_words(splits):
    n, s = splits
    for r in s.test[:100]:
        answer, ops = read_back(r.words, n)
        for i in range(len(r.words) - 1):
            if i in ops:  # every other value of an operand changes the answer
                for v in range(n):
                    if f"d{v}" != r.words[i]:
                        assert read_back(r.words[:i] + [f"d{v}"] + r.words[i + 1:], n)[0] != answer
            else:
                other = "water" if r.words[i] != "water" else "time"
                assert read_back(r.words[:i] + [other] + r.words[i + 1:], n)[0] == answer


def test_neither_operand_alone_tells_the_answer(splits):
    """Balanced answers, and for each value of one operand (first or second in the prompt) the answers
    are spread evenly: p(answer | one operand) ~ p(answer)."""
    n, s = splits
    recs = s.train + s.test
    assert all(c == len(s.test) // n for c in Counter(r.label for r in s.test).values())
    for which in (0, 1):
        by_value = {}
        for r in recs:
            ops = read_back(r.words, n)[1]
            by_value.setdefault(r.words[ops[which]], Counter())[r.label] += 1
        assert len(by_value) == n
        for counts in by_value.values():
            total = sum(counts.values())
            assert len(counts) == n and max(counts.values()) / total < 1 / n + 0.08


def test_positions_and_lengths_spread():
    s = ModularSum(n_train=0, n_test=400, min_filler=3, max_filler=8).load(seed=0)
    assert {len(r.words) for r in s.test} == set(range(3 + 3, 8 + 4))
    firsts = Counter(r.meta["positions"][0] < r.meta["positions"][1] for r in s.test)
    assert firsts[True] > 100 and firsts[False] > 100  # either operand may come first
    assert len({tuple(r.meta["positions"]) for r in s.test}) > 30


def test_seeded():
    a = ModularSum(n_train=10, n_test=50).load(seed=0)
    b = ModularSum(n_train=10, n_test=50).load(seed=0)
    c = ModularSum(n_train=10, n_test=50).load(seed=1)
    assert [r.words for r in a.test] == [r.words for r in b.test] != [r.words for r in c.test]


@pytest.mark.parametrize("bad,field", [({"n_values": 1}, "n_values"), ({"min_filler": -1}, "min_filler"),
                                       ({"min_filler": 6, "max_filler": 2}, "max_filler"),
                                       ({"n_test": -5}, "n_test")])
def test_bad_params_are_one_line(bad, field):
    with pytest.raises(XBenchError, match=f"dataset.params.{field}'") as e:
        ModularSum(**bad).load(seed=0)
    assert "\n" not in str(e.value)
