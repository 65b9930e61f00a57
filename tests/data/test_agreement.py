"""``agreement``: every prompt read back independently (the subject is the first noun after the
lead-in; only nouns mark number), the gold checked to be exactly the word that decides the answer
by flipping each word's number in turn."""
import pytest

from xbench.core.errors import XBenchError
from xbench.data.agreement import NOUNS, Agreement

SINGULAR = {s: p for s, p in NOUNS}
PLURAL = {p: s for s, p in NOUNS}


def number(word):
    """0 singular, 1 plural, None for a word that marks no number."""
    return 0 if word in SINGULAR else 1 if word in PLURAL else None


def read_back(words):
    """(answer, subject position): the verb agrees with the first noun (lead-ins have none)."""
    first = next(i for i, w in enumerate(words) if number(w) is not None)
    return ("is", "are")[number(words[first])], first


def flipped(word):
    return SINGULAR.get(word) or PLURAL[word]


@pytest.fixture(scope="module")
def splits():
    return Agreement(n_train=600, n_test=600).load(seed=3)


def test_answer_and_gold_are_the_subject(splits):
    for r in splits.train + splits.test:
        answer, subject = read_back(r.words)
        assert splits.label_names[r.label] == answer == r.meta["answer"]
        assert r.meta["foil"] == ("are" if answer == "is" else "is")
        assert [i for i, g in enumerate(r.rationale) if g] == [subject] == [r.meta["subject"]]
        assert len(r.rationale) == len(r.words)


def test_gold_is_exactly_the_deciding_word(splits):
    """Flipping the number of the subject flips the answer; flipping any other noun never does (and
    no other word has a number to flip)."""
    for r in splits.test[:200]:
        answer, _ = read_back(r.words)
        for i, w in enumerate(r.words):
            if number(w) is None:
                continue
            changed, _ = read_back(r.words[:i] + [flipped(w)] + r.words[i + 1:])
            assert (changed != answer) == bool(r.rationale[i]), (r.words, i)


def test_attractors_mostly_mismatch_and_labels_balance(splits):
    test = splits.test
    assert sum(r.label for r in test) == len(test) // 2
    nouns = [[i for i, w in enumerate(r.words) if number(w) is not None][1:] for r in test]
    assert all(n == r.meta["attractors"] for n, r in zip(nouns, test))
    counts = {len(n) for n in nouns}
    assert counts == {0, 1, 2, 3}
    pairs = [(number(r.words[i]) != r.label) for n, r in zip(nouns, test) for i in n]
    assert 0.75 < sum(pairs) / len(pairs) < 0.85  # p_mismatch 0.8
    with_mismatch = [r for r in test if r.meta["n_mismatched"] > 0]
    assert len(with_mismatch) / len(test) > 0.6
    # the last noun before the verb disagrees often: "agree with the nearest noun" is a wrong heuristic
    nearest_wrong = sum(number(r.words[n[-1]]) != r.label for n, r in zip(nouns, test) if n)
    assert nearest_wrong / sum(1 for n in nouns if n) > 0.7
    assert {r.meta["subject"] for r in test} != {1}  # lead-ins move the subject
    assert any("that" in r.words[r.meta["subject"]:] for r in test)  # relative clauses occur


def test_no_attractors_and_all_matching():
    none = Agreement(n_train=0, n_test=100, max_attractors=0).load(seed=0)
    assert all(r.meta["attractors"] == [] for r in none.test)
    same = Agreement(n_train=0, n_test=100, min_attractors=2, p_mismatch=0.0).load(seed=0)
    assert all(number(r.words[i]) == r.label for r in same.test for i in r.meta["attractors"])
    assert all(len(r.meta["attractors"]) >= 2 for r in same.test)


def test_seeded():
    a = Agreement(n_train=10, n_test=50).load(seed=0)
    b = Agreement(n_train=10, n_test=50).load(seed=0)
    c = Agreement(n_train=10, n_test=50).load(seed=1)
    assert [r.words for r in a.test] == [r.words for r in b.test] != [r.words for r in c.test]
    assert [r.words for r in a.train] != [r.words for r in a.test[:10]]


@pytest.mark.parametrize("bad,field", [({"p_mismatch": 1.5}, "p_mismatch"), ({"max_attractors": -1}, "max_attractors"),
                                       ({"min_attractors": 3, "max_attractors": 1}, "max_attractors"),
                                       ({"lead_in": -0.1}, "lead_in")])
def test_bad_params_are_one_line(bad, field):
    with pytest.raises(XBenchError, match=f"dataset.params.{field}'") as e:
        Agreement(**bad).load(seed=0)
    assert "\n" not in str(e.value)
