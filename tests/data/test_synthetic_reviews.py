"""``synthetic-reviews``: the generation rule checked by an independent scorer written here from the
docstring (strong +-2, weak +-1, a negator directly before a sentiment word flips it and weighs 1, a
negator before anything else weighs 0), so a generator that plants a wrong sum, a wrong gold or a
negator that negates by accident fails."""
import numpy as np
import pytest

from xbench.data.synthetic import NEGATORS, NEUTRAL, STRONG, WEAK, SyntheticReviews

SIGN = {**{w: (1, 2) for w in STRONG["positive"]}, **{w: (-1, 2) for w in STRONG["negative"]},
        **{w: (1, 1) for w in WEAK["positive"]}, **{w: (-1, 1) for w in WEAK["negative"]}}
GAP = "[MASK]"  # a removed word keeps its place, as the task's replacement does


def score(words: list[str]) -> int:
    """The signed evidence sum S of a review, read left to right."""
    s, i = 0, 0
    while i < len(words):
        w = words[i]
        if w in NEGATORS and i + 1 < len(words) and words[i + 1] in SIGN:
            s -= SIGN[words[i + 1]][0]  # "not good" = -1, "not terrible" = +1
            i += 2
            continue
        if w in SIGN:
            s += SIGN[w][0] * SIGN[w][1]
        i += 1
    return s


@pytest.fixture(scope="module")
def splits():
    return SyntheticReviews(n_train=600, n_test=600, max_opposing=2, max_decoys=2).load(seed=3)


def test_vocabularies_are_disjoint():
    sentiment = set(SIGN)
    assert not sentiment & set(NEUTRAL) and not set(NEGATORS) & set(NEUTRAL)
    assert not set(NEGATORS) & sentiment


def test_the_sum_is_plus_or_minus_one_and_decides_the_label(splits):
    for r in splits.train + splits.test:
        assert score(r.words) == (1 if r.label == 1 else -1), r.words


def test_every_gold_word_is_necessary_and_no_other_word_is(splits):
    for r in splits.test:
        s = score(r.words)
        for i, g in enumerate(r.rationale):
            removed = score(r.words[:i] + [GAP] + r.words[i + 1:])
            if g:  # a gold word: its removal leaves a tie or flips the label
                assert removed * s <= 0, (r.words, i)
            else:  # filler, decoys and counter-evidence: the label survives
                assert removed * s > 0, (r.words, i)


def test_gold_is_the_evidence_for_the_label(splits):
    for r in splits.test:
        gold = [w for w, g in zip(r.words, r.rationale) if g]
        assert gold
        sign = 1 if r.label == 1 else -1
        # the gold words alone, in order, make the label (sum of the supporting units)
        assert score(gold) * sign > 0
        assert all(w in NEUTRAL for w, g in zip(r.words, r.rationale) if not g and w not in SIGN
                   and w not in NEGATORS)


def test_the_hard_parts_are_there_in_measured_shares(splits):
    rs = splits.train + splits.test
    negated = [any(w in NEGATORS and r.words[i + 1] in SIGN and g for i, (w, g) in enumerate(zip(r.words[:-1], r.rationale)))
               for r in rs]
    decoy = [any(w in NEGATORS and r.words[i + 1] in NEUTRAL for i, w in enumerate(r.words[:-1])) for r in rs]
    counter = [any(w in SIGN and not g for w, g in zip(r.words, r.rationale)) for r in rs]
    strong = [any(w in SIGN and SIGN[w][1] == 2 and g for w, g in zip(r.words, r.rationale)) for r in rs]
    for share in (negated, decoy, counter, strong):
        assert 0.25 < np.mean(share) < 0.9
    assert 0.4 < np.mean([r.label for r in rs]) < 0.6
    # filler says nothing about the label: same amount in both classes
    fill = {c: np.mean([sum(w in NEUTRAL for w in r.words) for r in rs if r.label == c]) for c in (0, 1)}
    assert abs(fill[0] - fill[1]) < 1.0


def test_deterministic_and_seeded(splits):
    again = SyntheticReviews(n_train=600, n_test=600, max_opposing=2, max_decoys=2).load(seed=3)
    assert [r.words for r in again.test] == [r.words for r in splits.test]
    other = SyntheticReviews(n_train=600, n_test=600, max_opposing=2, max_decoys=2).load(seed=4)
    assert [r.words for r in other.test] != [r.words for r in splits.test]


@pytest.mark.parametrize("bad", [{"min_words": 0}, {"p_strong": 1.5}, {"max_decoys": -1}])
def test_bad_params_are_refused(bad):
    with pytest.raises(ValueError):
        SyntheticReviews(**bad).load(seed=0)


def test_defaults_have_no_decoys_and_one_opposing_unit_at_most():
    rs = SyntheticReviews(n_train=10, n_test=400).load(seed=0).test
    assert not any(w in NEGATORS and r.words[i + 1] in NEUTRAL for r in rs for i, w in enumerate(r.words[:-1]))
    assert max(sum(w in SIGN and not g for w, g in zip(r.words, r.rationale)) for r in rs) <= 1
