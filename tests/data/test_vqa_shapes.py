"""vqa-shapes: every answer follows from the scene and the question by the generation rule, the gold is
the queried objects' pixels and the deciding words, and the visual questions are at chance without
the image while the prior questions are answered by the text alone."""
from collections import Counter

import numpy as np
import pytest

from xbench.core.errors import XBenchError
from xbench.data.vqa import ANSWERS, COLOURS, SHAPES, VQAShapes


@pytest.fixture(scope="module")
def splits():
    return VQAShapes(n_train=3000, n_test=300, test_questions="all").load(0)


def objects(r):
    return [tuple(o.split()) for o in r.meta["objects"]]  # (colour, shape)


def test_answers_follow_from_the_scene(splits):
    seen = Counter()
    for r in splits.train:
        t, ans, w, objs = r.meta["question_type"], ANSWERS[r.label], r.words, objects(r)
        seen[t] += 1
        if t == "exist":
            assert ans == ("yes" if (w[3], w[4]) in objs else "no")
        elif t == "colour":
            match = [c for c, sh in objs if sh == w[4]]
            assert match == [ans]
        elif t == "count":
            assert ans == str(sum(sh + "s" == w[2] for _, sh in objs))
        else:
            assert t == "prior" and ans == w[4]
        assert 1 <= len(objs) <= 4
    assert set(seen) == {"exist", "colour", "count", "prior"}


def test_gold_is_the_queried_objects_and_the_deciding_words(splits):
    for r in splits.train[:400]:
        t, w, m = r.meta["question_type"], r.words, r.mask.astype(bool)
        gold_words = [x for x, g in zip(w, r.rationale) if g]
        want = {"exist": [w[3], w[4]], "colour": [w[4]], "count": [w[2]], "prior": [w[4]]}[t]
        assert gold_words == want
        ink = r.image.max(axis=0) > 0.5
        assert not (m & ~ink).any()  # every gold pixel is ink of an object
        if t == "prior" or ANSWERS[r.label] in ("no", "0"):
            assert not m.any()  # nothing in the image decides
        if t == "colour":
            ch = COLOURS.index(ANSWERS[r.label])
            assert (r.image[ch][m] >= 0.7).all() and m.sum() >= 9


def test_the_text_alone_is_at_chance_on_visual_questions(splits):
    """P(answer | question words) is close to uniform for exist, colour and count: the image is needed."""
    by_q = {}
    for r in splits.train:
        if r.meta["question_type"] != "prior":
            by_q.setdefault((r.meta["question_type"], r.words[2] if r.meta["question_type"] == "count" else r.words[-2]),
                            []).append(r.label)
    for (t, _), labels in by_q.items():
        top = Counter(labels).most_common(1)[0][1] / len(labels)
        chance = {"exist": 1 / 2, "colour": 1 / 3, "count": 1 / 4}[t]
        assert top < chance + 0.12, (t, top)


def test_prior_scenes_are_independent_of_the_question(splits):
    prior = [r for r in splits.train if r.meta["question_type"] == "prior"]
    has = np.mean([any(c == r.words[4] for c, _ in objects(r)) for r in prior])
    assert 0.5 < has < 0.9  # P(some object of the asked colour) = 1 − (2/3)^n, n = 2..4, whatever the answer


def test_deterministic_and_test_questions_change_only_the_test_split():
    a = VQAShapes(n_train=50, n_test=20, test_questions="visual").load(3)
    b = VQAShapes(n_train=50, n_test=20, test_questions="prior").load(3)
    assert all(np.array_equal(x.image, y.image) and x.words == y.words for x, y in zip(a.train, b.train))
    assert {r.meta["question_type"] for r in a.test} <= {"exist", "colour", "count"}
    assert {r.meta["question_type"] for r in b.test} == {"prior"}
    c = VQAShapes(n_train=50, n_test=20, test_questions="visual").load(3)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a.test, c.test))
    assert a.label_names == list(ANSWERS) and a.test[0].image.shape == (3, 24, 24)


@pytest.mark.parametrize("params,needle", [
    ({"test_questions": "colors"}, "parameter 'test_questions' must be visual, prior, all or a list"),
    ({"train_mix": {"exist": -1}}, "parameter 'train_mix'"),
    ({"size": 12}, "parameter 'size' must be at least 21"),
])
def test_bad_parameters(params, needle):
    with pytest.raises(XBenchError, match=needle):
        VQAShapes(**params).load(0)
