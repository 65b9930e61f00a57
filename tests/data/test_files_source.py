"""The ``path`` source and the field-mapping layer: rationale forms, labels, one-line errors, and
how word records reach model tokens (real WordPiece tokenizer: truncation, pooling, pairs)."""
import json

import numpy as np
import pytest
import yaml

from helpers_hub import FIXTURES, minilm_tokenizer
from xbench.cli import main
from xbench.data.base import Record
from xbench.data.fields import FieldMap, Where, chars_to_mask, word_spans
from xbench.data.files import PathSource
from xbench.core.errors import XBenchError
from xbench.tasks.task import pool
from xbench.tasks.catalogue import parse_task
from xbench.features.text import encode_records

FILES = FIXTURES / "files"
REVIEWS = {"test": str(FILES / "reviews.jsonl"), "text": "review", "label": "sentiment", "id": "doc",
           "label_map": {"NEG": 0, "POS": 1}}
# by hand from the fixture: words, and the rationale every form describes
R1_WORDS = ["An", "unbelievably", "good", "film,", "well", "acted."]
R1_GOLD = [0, 1, 1, 0, 0, 1]
R2_GOLD = [1, 0, 1, 0, 1]


def load(**params):
    src = PathSource(**params)
    src.task_path = str(FILES / "task.yaml")  # relative data paths resolve beside it
    return src.load(0)


@pytest.mark.parametrize("fmt", ["mask", "spans", "chars"])
@pytest.mark.parametrize("data", ["reviews.jsonl", "reviews.csv"])
def test_three_rationale_forms_give_the_same_word_rationale(fmt, data):
    s = load(**{**REVIEWS, "test": data, "rationale": fmt, "rationale_format": fmt})
    r1, r2, r3 = s.test
    assert r1.words == R1_WORDS and r1.id == "r1"
    assert r1.rationale == R1_GOLD and r2.rationale == R2_GOLD
    assert r3.rationale is None  # a null / empty cell: no rationale for that example
    assert [r.label for r in s.test] == [1, 0, 0] and s.label_names == ["NEG", "POS"]
    assert s.train == []  # a pretrained model needs no train file


def test_char_offsets_mid_word_mark_the_overlapped_words_only():
    text = "An  unbelievably\tgood film,\nwell acted."
    spans = word_spans(text)
    assert [text[a:b] for a, b in spans] == text.split()
    assert spans[1] == (4, 16)  # from the original string: the double space and tab are kept
    assert chars_to_mask(spans, [(15, 16)]) == [0, 1, 0, 0, 0, 0]  # last letter of a word
    assert chars_to_mask(spans, [(16, 17)]) == [0, 0, 0, 0, 0, 0]  # only the tab between words
    assert chars_to_mask(spans, [(16, 18)]) == [0, 0, 1, 0, 0, 0]
    assert chars_to_mask(spans, [(0, 39)]) == [1] * 6


PAIR = {"test": str(FILES / "pairs.jsonl"), "text": ["premise", "hypothesis"], "id": "pair",
        "label_names": ["entailment", "neutral", "contradiction"]}


@pytest.mark.parametrize("field,fmt", [("mask_seg", "mask"), ("mask_flat", "mask"), ("spans_seg", "spans"),
                                       ("spans_flat", "spans"), ("chars_seg", "chars")])
def test_pair_rationale_forms_agree(field, fmt):
    s = load(**{**PAIR, "rationale": field, "rationale_format": fmt})
    p1, p2 = s.test
    assert p1.words == "A man sleeps on a bench.".split() and p1.words_b == "Someone is resting outside.".split()
    assert p1.rationale == [0, 0, 1, 0, 0, 1, 0, 0, 1, 1]
    assert p2.words_b == ["No", "animals", "are", "present."]  # a list of words is taken as is
    assert p2.rationale == (None if fmt == "chars" else [0, 1, 0, 1, 1, 0, 0])
    assert [p1.label, p2.label] == [0, 2]


def test_labels_names_and_maps():
    # string labels without a map: looked up in label_names
    s = load(**{**REVIEWS, "label_map": None, "label_names": ["NEG", "POS"]})
    assert [r.label for r in s.test] == [1, 0, 0]
    # a map onto class names (several raw values may share a class)
    s = load(**{**REVIEWS, "label_map": {"NEG": "bad", "POS": "good"}, "label_names": ["good", "bad"]})
    assert [r.label for r in s.test] == [0, 1, 1] and s.label_names == ["good", "bad"]
    with pytest.raises(XBenchError, match=r"label 'POS' is not a class index; set dataset.params.label_names"):
        load(**{**REVIEWS, "label_map": None})
    with pytest.raises(XBenchError, match=r"field 'dataset.params.label_map' maps 'NEG' to the class name"):
        load(**{**REVIEWS, "label_map": {"NEG": "bad"}})


def test_n_test_and_train_split(tmp_path):
    s = load(**{**REVIEWS, "n_test": 2, "train": str(FILES / "reviews.csv"), "n_train": 1})
    assert [r.id for r in s.test] == ["r1", "r2"] and [r.id for r in s.train] == ["r1"]


def one_line(e: XBenchError) -> str:
    msg = str(e)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("row,params,needles", [
    ({"doc": "x7", "sentiment": "POS"}, {}, ["line 2", "example x7", "field 'review': is missing"]),
    ({"doc": "x7", "review": "a b", "sentiment": "POS", "mask": [0, 2]}, {"rationale": "mask"},
     ["example x7", "field 'mask'", "mask entries must be 0 or 1; got 2"]),
    ({"doc": "x7", "review": "a b", "sentiment": "POS", "mask": [0, 1, 1]}, {"rationale": "mask"},
     ["example x7", "mask has 3 entries for 2 words"]),
    ({"doc": "x7", "review": "a b", "sentiment": "POS", "spans": [[1, 5]]},
     {"rationale": "spans", "rationale_format": "spans"}, ["example x7", "word span [1, 5) is out of range"]),
    ({"doc": "x7", "review": "a b", "sentiment": "POS", "spans": [1, 2]},
     {"rationale": "spans", "rationale_format": "spans"}, ["example x7", "entry 1 is not a [start, end) pair"]),
    ({"doc": "x7", "review": ["a", "b"], "sentiment": "POS", "chars": [[0, 1]]},
     {"rationale": "chars", "rationale_format": "chars"}, ["example x7", "needs the text as a string"]),
    ({"doc": "x7", "review": "a b", "sentiment": "POS", "chars": [[0, 9]]},
     {"rationale": "chars", "rationale_format": "chars"}, ["example x7", "character span [0, 9) is out of range"]),
    ({"doc": "x7", "review": "a b", "sentiment": "MEH"}, {}, ["example x7", "label 'MEH' is not a key of label_map"]),
    ({"doc": "x7", "review": "  ", "sentiment": "POS"}, {}, ["example x7", "field 'review': is empty"]),
    ({"doc": "r1", "review": "a b", "sentiment": "POS"}, {}, ["example id 'r1' repeats the one at line 1"]),
])
def test_bad_rows_are_one_line_errors_naming_file_example_and_field(tmp_path, row, params, needles):
    path = tmp_path / "data.jsonl"
    good = {"doc": "r1", "review": "fine", "sentiment": "POS", "mask": [1], "spans": [[0, 1]], "chars": [[0, 4]]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(XBenchError) as e:
        load(**{**REVIEWS, "test": str(path), **params})
    msg = one_line(e.value)
    assert msg.startswith(str(path))
    for n in needles:
        assert n in msg, msg


@pytest.mark.parametrize("params,needle", [
    ({"rationale": "mask", "rationale_format": "bits"},
     "field 'dataset.params.rationale_format' must be one of mask, spans, chars; got 'bits'"),
    ({"text": ["a", "b", "c"]}, "field 'dataset.params.text' must be a field name or a list of two"),
    ({"test": None}, "field 'dataset.params.test' is required"),
    ({"test": "nowhere.jsonl"}, "needs data: nowhere.jsonl not found"),
    ({"test": str(FIXTURES / "README.md")}, "cannot tell the file format from the extension '.md'"),
    ({"n_test": 0}, "field 'dataset.params.n_test' must be a positive integer"),
])
def test_bad_params_are_one_line_errors(params, needle):
    with pytest.raises(XBenchError) as e:
        load(**{**REVIEWS, **params})
    assert needle in one_line(e.value)


def test_cli_reports_a_bad_row_as_one_line_exit_2(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("doc,review,sentiment,mask\nz1,good film,POS,\"[1, 0, 0]\"\n")
    task = tmp_path / "t.yaml"
    task.write_text(yaml.safe_dump({
        "name": "csv-task", "rationale": True, "granularity": "words",
        "dataset": {"source": "path", "params": {**REVIEWS, "test": "d.csv", "rationale": "mask"}},
        "model": {"source": "train-bert"}}))
    code = main(["run", str(task), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{data}, row 1: example z1: field 'mask': mask has 3 entries for 2 words" in err


# -- words -> model tokens through the real WordPiece tokenizer ------------------------------
def spec(**kw):
    base = {"name": "t", "granularity": "words", "rationale": True, "max_length": 32,
            "dataset": {"source": "path"}, "model": {"source": "hub"}}
    return parse_task({**base, **kw}, "t.yaml")


def test_truncation_cuts_the_rationale_where_it_cuts_the_input():
    tok = minilm_tokenizer()
    words = ["a", "truly", "unbelievably", "good", "film"]  # unbelievably -> un ##bel ##ie ##va ##bly
    rec = Record("x", words, 1, [0, 0, 1, 1, 1])
    full = encode_records([rec], tok, spec())[0]
    assert full.features == words and not full.truncated
    # [CLS] a truly un ##bel ##ie | ##va ##bly good film: the cut falls inside "unbelievably"
    ex = encode_records([rec], tok, spec(max_length=6))[0]
    assert tok.convert_ids_to_tokens(ex.input_ids.tolist()) == ["[CLS]", "a", "truly", "un", "##bel", "[SEP]"]
    assert ex.truncated and ex.features == ["a", "truly", "unbelievably"]
    assert ex.rationale.tolist() == [0, 0, 1]  # the partly kept word keeps its gold mark; the rest is cut
    assert ex.feature_ids.tolist() == [-1, 0, 1, 2, 2, -1]
    # token granularity: the same cut, one feature per kept token
    ex = encode_records([rec], tok, spec(max_length=6, granularity="tokens"))[0]
    assert ex.features == ["a", "truly", "un", "##bel"] and ex.rationale.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("how,expected", [("sum", [1.0, 2.0 + 3.0 + 4.0 + 5.0 + 6.0, 7.0]),
                                          ("mean", [1.0, 4.0, 7.0]), ("max", [1.0, 6.0, 7.0])])
def test_subword_scores_pool_into_words(how, expected):
    ex = encode_records([Record("x", ["an", "unbelievably", "film"], 1)], minilm_tokenizer(), spec(pooling=how))[0]
    token_scores = np.arange(len(ex.input_ids), dtype=float)  # [CLS]=0, an=1, un..bly=2..6, film=7, [SEP]=8
    assert pool(ex, token_scores, how).tolist() == expected


def test_pairs_get_token_type_ids_and_a_fixed_segment_has_no_features():
    tok = minilm_tokenizer()
    s = load(**{**PAIR, "rationale": "mask_seg"})
    p1 = s.test[0]
    both = encode_records([p1], tok, spec())[0]
    toks = tok.convert_ids_to_tokens(both.input_ids.tolist())
    sep = toks.index("[SEP]")
    assert both.token_type_ids.tolist() == [0] * (sep + 1) + [1] * (len(toks) - sep - 1)
    assert both.features == p1.words + p1.words_b and both.rationale.tolist() == p1.rationale
    hyp = encode_records([p1], tok, spec(perturb_segments=[1]))[0]
    assert hyp.features == p1.words_b and hyp.rationale.tolist() == [0, 0, 1, 1]
    assert (hyp.feature_ids[:sep + 1] == -1).all()  # premise tokens are never features
    assert hyp.word_index.tolist() == [6, 7, 8, 9]
    assert np.array_equal(hyp.input_ids, both.input_ids)
    assert np.array_equal(hyp.token_type_ids, both.token_type_ids)


def test_fieldmap_where_message_format():
    fm = FieldMap.from_params({"text": "t", "label": "y", "id": "i"})
    with pytest.raises(XBenchError) as e:
        fm.record({"i": 5, "y": 0}, Where("f.jsonl", "line 9"), "test-0")
    assert str(e.value) == "f.jsonl, line 9: example 5: field 't': is missing (the row has fields: i, y)"
