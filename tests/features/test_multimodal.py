"""The multimodal modality on a hand-set model whose outputs are on paper (tests/helpers_vqa.py):
features, removal per part, outputs, gradient and perturbation attributions, bad input."""
import numpy as np
import pytest
import torch
import yaml

import helpers_vqa as H
from helpers import sigmoid as s
from xbench.cli import main
from xbench.core.errors import XBenchError
from xbench.explainers.base import Explainer
from xbench.features.multimodal import modality_shares, shapley_two, text_share_of
from xbench.tasks.catalogue import parse_task
from xbench.tasks.task import load_task


def mini(**over):
    return load_task(parse_task({**H.MINI_TASK, **over}, "mini.yaml"))


def z_of(task, ex, keep):
    rows, _ = task.removal.apply(ex, np.asarray(keep, bool)[None])
    return float(task.model.outputs(rows)[0, 1])


def test_features_are_patches_then_words():
    ex = mini().examples[0]
    assert ex.features == ["patch r0c0", "patch r0c1", "patch r1c0", "patch r1c1", "is", "red", "?"]
    assert ex.parts.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert ex.rationale.tolist() == [1, 0, 0, 0, 0, 1, 0]  # the top-left patch, the word "red"
    # positions: 16 pixels (2x2 patches, row-major), then [CLS] (never a feature) and the 3 words
    assert ex.feature_ids.tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3, -1, 4, 5, 6]
    assert ex.part_mask("text").tolist() == [False] * 4 + [True] * 3


def test_outputs_equal_the_closed_form_per_part():
    task = mini()
    ex = task.examples[0]
    full = np.ones(7, bool)
    assert z_of(task, ex, full) == pytest.approx(6.5)  # 3 channels x 1.5 + u[red] = 2
    for j, patch in enumerate(H.PATCH_SUMS):  # a removed patch (zero baseline) takes 3 x its W sum away
        keep = full.copy()
        keep[j] = False
        assert z_of(task, ex, keep) == pytest.approx(6.5 - 3 * patch)
    keep = full.copy()
    keep[5] = False  # "red" -> [MASK] (u = 0)
    assert z_of(task, ex, keep) == pytest.approx(4.5)
    assert z_of(task, ex, np.zeros(7, bool)) == pytest.approx(0.0)
    # the half-ones image: only the left patches have ink
    assert z_of(task, task.examples[1], full) == pytest.approx(3 * 1.0 + 2)


@pytest.mark.parametrize("policy,expected", [
    ("zero+mask", 6.5 - 3.0 - 2.0),
    ("mean+mask", 6.5 - 2.0),        # the all-ones image's channel means are 1: removing a patch changes nothing
    ("blur+pad", 6.5 - 2.0),         # a blurred all-ones image is all ones; [PAD] has attention 0
    ("zero+delete", 6.5 - 3.0 - 2.0),
    ("zero+unk", 6.5 - 3.0 - 2.0),
])
def test_each_part_has_its_own_policy(policy, expected):
    task = mini(replacement=policy)
    keep = np.ones(7, bool)
    keep[[0, 5]] = False  # the top-left patch and "red"
    assert z_of(task, task.examples[0], keep) == pytest.approx(expected)
    d = task.removal.describe()
    assert d["replacement"] == policy and d["image"]["replacement"] == policy.split("+")[0]
    assert d["text"]["replacement"] == policy.split("+")[1]


def test_delete_shortens_the_question():
    task = mini(replacement="zero+delete")
    ex = task.examples[0]
    keep = np.ones(7, bool)
    keep[[4, 6]] = False
    rows = task.removal.text_rows(ex, keep[None])
    assert len(rows[0][0]) == 2  # [CLS] red


def explain(task, name, **params):
    e = Explainer.registry.get(name)(**params)
    return e.explain(task, task.examples, [1] * len(task.examples), 0)


@pytest.mark.parametrize("name,params", [("input_x_gradient", {}), ("integrated_gradients", {"n_steps": 8}),
                                         ("occlusion", {})])
def test_attributions_across_both_parts(name, params):
    """A linear model: every one of these gives the patch's 3 x W sum and the word's u − u[MASK], on the
    image and the question at once (captum's multi-input form for the gradients)."""
    task = mini()
    out = explain(task, name, **params)
    np.testing.assert_allclose(out.attributions[0], [3.0, 0.0, 0.0, 1.5, 0.0, 2.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(out.attributions[1], [3.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0], atol=1e-5)


def test_smoothgrad_noise_is_scaled_per_input():
    from xbench.explainers.gradient import _stdev

    a, b = torch.zeros(1, 3) + torch.tensor([0.0, 1.0, 2.0]), torch.tensor([[0.0, 10.0]])
    assert _stdev((a, b), 0.1) == (pytest.approx(0.2), pytest.approx(1.0))
    out = explain(mini(), "smoothgrad", nt_samples=4)
    assert np.all(np.isfinite(out.attributions[0]))


def test_two_player_shapley_by_hand():
    """v(∅) = σ(0), v(I) = σ(4.5), v(T) = σ(2), v(IT) = σ(6.5) on the all-ones example."""
    task = mini()
    ex = task.examples[0]
    phi_i, phi_t, share = modality_shares(ex, task.model, task.removal, 1)
    want_t = 0.5 * ((s(2) - s(0)) + (s(6.5) - s(4.5)))
    want_i = 0.5 * ((s(4.5) - s(0)) + (s(6.5) - s(2)))
    assert phi_t == pytest.approx(want_t) and phi_i == pytest.approx(want_i)
    assert phi_i + phi_t == pytest.approx(s(6.5) - s(0))  # efficiency
    assert share == pytest.approx(abs(want_t) / (abs(want_t) + abs(want_i)))
    assert shapley_two(0, 0, 0, 0) == (0, 0) and np.isnan(text_share_of(0.0, 0.0))
    # a model that ignores the image: all the credit goes to the text
    tok = H.tokenizer()
    blind = H.LinearVL(tok, w_img=np.zeros((4, 4), np.float32))
    t2 = load_task(parse_task(H.MINI_TASK, "mini.yaml"), model=(blind, tok, {}))
    assert modality_shares(t2.examples[0], t2.model, t2.removal, 1)[2] == pytest.approx(1.0)


def test_the_viewer_gets_the_image_parts_and_shares():
    task = mini()
    shared, own = task.modality.view(task.examples[0])
    assert own["image"]["h"] == 4 and len(own["image"]["pixels"]) == 16 and own["pixel_feature"][:4] == [0, 0, 1, 1]
    assert own["parts"] == ["image"] * 4 + ["text"] * 3
    rec = task.modality.view_model(task.examples, task.model, task.removal, np.array([1, 1]))[0]
    assert rec["model_text_share"] == pytest.approx(modality_shares(task.examples[0], task.model, task.removal, 1)[2],
                                                    abs=1e-6)


# -- bad input: one line naming the task, field or example ----------------------------------------

class _Records(H.MiniVQA):
    name = "test-mini-vqa-bad"
    params = {"case": "empty"}

    def load(self, seed):
        sp = super().load(seed)
        r = sp.test[1]
        case = self.p["case"]
        if case == "empty":
            r.words = ["  "]
        elif case == "missing":
            r.image = "/nonexistent/scene-7.png"
        elif case == "channels":
            r.image = np.ones((1, 4, 4), np.float32)
            r.mask = None
        elif case == "size":
            r.image = np.ones((3, 6, 6), np.float32)
            r.mask = None
        return sp


class _BigTokenizerModel(H.LinearVLSource):
    """A processor that does not match the model: the model's embedding has fewer rows than the tokenizer."""

    name = "test-linear-vl-mismatch"

    def load(self, task, splits):
        tok = H.tokenizer()
        m = H.LinearVL(tok)
        m.word = torch.nn.Embedding(3, 1)
        return m, tok, {}


@pytest.mark.parametrize("case,needle", [
    ("empty", "example m1: field 'words': the question (text) is empty"),
    ("missing", "example m1: field 'image': file '/nonexistent/scene-7.png' not found"),
    ("channels", "example m1: field 'image': image is (1, 4, 4) (C, H, W), the model takes (3, 4, 4)"),
    ("size", "example m1: field 'image': image is (3, 6, 6) (C, H, W), the model takes (3, 4, 4)"),
    ("processor", "field 'model': the processor does not match the model: its tokenizer has 8 tokens, "
                  "the model's embedding 3"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, needle):
    data = {**H.MINI_TASK, "dataset": {"source": "test-mini-vqa-bad", "params": {"case": case}}}
    if case == "processor":
        data = {**H.MINI_TASK, "model": {"source": "test-linear-vl-mismatch"}}
    with pytest.raises(XBenchError) as e:
        load_task(parse_task(data, "mini.yaml"))
    assert needle in str(e.value) and "\n" not in str(e.value)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    code = main(["run", str(path), "--explainers", "random", "--metrics", "comprehensiveness", "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_multimodal_fields_are_checked():
    with pytest.raises(XBenchError, match="field 'patch' is for multimodal tasks"):
        from helpers import LINEAR_TASK

        parse_task({**LINEAR_TASK, "patch": 4}, "t.yaml")
    with pytest.raises(XBenchError, match="field 'replacement' must be one of zero\\+mask"):
        parse_task({**H.MINI_TASK, "replacement": "mask"}, "t.yaml")
    with pytest.raises(XBenchError, match="field 'patch' must be positive"):
        parse_task({**H.MINI_TASK, "patch": 0}, "t.yaml")
