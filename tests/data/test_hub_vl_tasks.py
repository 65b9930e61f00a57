"""The Hub vision-language tasks (tasks/vilt-vqav2.yaml, tasks/clip-cifar10.yaml) on local fixtures in the
Hub's formats (tests/helpers_hub_vl.py): the ``hub-vqa`` and ``hub-image-classes`` sources read Parquet
repos through the real ``datasets.load_dataset``, ``hub-vilt-vqa`` and ``hub-clip-zero-shot`` load tiny
ViLT and CLIP checkpoints with real tokenizers and image processors through ``from_pretrained``. What is
checked is read back independently: the processors' own outputs and the checkpoints' own logits."""
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from helpers_hub_vl import ANSWERS, CIFAR10, QUESTIONS, cifar_dataset, tiny_clip, tiny_vilt, vqa_dataset, vqa_rows
from xbench.cli import main
from xbench.data.hub_vl import HubImageClasses, HubVQA, split_words
from xbench.explainers.base import Explainer
from xbench.tasks.catalogue import load_task_file, parse_task
from xbench.tasks.task import load_task

REPO = Path(__file__).resolve().parents[2]
SIDE, PATCH = 96, 32  # the fixtures' image side; the shipped tasks' patch (the models' own)
IN_VOCAB = [q for q in QUESTIONS if q[2] in ANSWERS]


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub-vl")
    return {"root": root, "vilt": tiny_vilt(root / "vilt", seed=1, image_size=SIDE),
            "clip": tiny_clip(root / "clip", seed=2, image_size=SIDE),
            "vqa": vqa_dataset(root / "vqa"), "cifar": cifar_dataset(root / "cifar")}


def on_fixture(name: str, fx, model: str | None = None, data: str | None = None, **top) -> dict:
    """The shipped task file with its model and dataset pointed at the local fixture folders."""
    d = yaml.safe_load((REPO / "tasks" / f"{name}.yaml").read_text())
    vilt = name == "vilt-vqav2"
    d["model"]["params"]["name"] = str(fx[model or ("vilt" if vilt else "clip")])
    d["dataset"]["params"]["path"] = str(fx[data or ("vqa" if vilt else "cifar")])
    if vilt:
        d["model"]["params"]["image_size"] = SIDE
    d.update(top)
    return d


def task_of(d: dict, fx, n: int | None = None):
    return load_task(parse_task(d, str(fx["root"] / "fixture.yaml")), n=n)


def full(task):
    return task.model.outputs([(ex, np.ones(ex.n_features, bool)) for ex in task.examples])


# -- the dataset sources ---------------------------------------------------------------------------
def test_vqa_rows_become_records(fx):
    s = HubVQA(path=str(fx["vqa"]), keep=["question_type"]).load(0)
    assert s.train == [] and s.label_names == sorted({q[2] for q in QUESTIONS})
    assert s.info["n_answers"] == len(s.label_names)
    for r, (qid, q, a, size, mode), row in zip(s.test, QUESTIONS, vqa_rows()):
        assert r.id == str(qid) and r.words == q[:-1].split() + ["?"] and s.label_names[r.label] == a
        assert r.meta["answer"] == a and r.meta["answers"] == [x["answer"] for x in row["answers"]]
        assert r.meta["question_type"] == row["question_type"] and r.rationale is None and r.mask is None
        assert r.image.size == size and r.image.mode == ("L" if mode == "L" else "RGB")  # RGBA read as RGB
    assert split_words("Is it red ?") == ["Is", "it", "red", "?"] and split_words("a photo of a U.S. flag.") == \
        ["a", "photo", "of", "a", "U.S.", "flag", "."]


def test_image_classes_become_caption_records(fx):
    s = HubImageClasses(path=str(fx["cifar"]), n_test=4).load(0)
    caps = [["a", "photo", "of", "a", c, "."] for c in CIFAR10]
    assert s.label_names == CIFAR10 and s.info["caption_words"] == caps and len(s.test) == 4
    assert s.info["captions"][0] == "a photo of a airplane ."
    for i, r in enumerate(s.test):
        assert r.words == [w for c in caps for w in c] and r.label == (3 * i + 1) % 10 and r.image.size == (32, 32)
    named = HubImageClasses(path=str(fx["cifar"]), class_names=[c.upper() for c in CIFAR10], template="{} here").load(0)
    assert named.label_names == CIFAR10 and named.info["caption_words"][1] == ["AUTOMOBILE", "here"]


# -- the ViLT task --------------------------------------------------------------------------------
def test_vilt_task_loads_the_fixtures_through_the_task_file(fx):
    from transformers import ViltForQuestionAnswering

    task = task_of(on_fixture("vilt-vqav2", fx), fx)
    assert isinstance(task.module.vilt, ViltForQuestionAnswering) and task.module.image_shape == (3, SIDE, SIDE)
    info = task.info["model"]
    assert info["architecture"] == "ViltForQuestionAnswering" and info["local_path"] == str(fx["vilt"])
    assert info["answers"]["examples_dropped_not_in_vocabulary"] == 1
    assert info["answers"]["answers_not_in_vocabulary"] == {"purple": 1}
    assert task.label_names == ANSWERS  # the model's whole answer vocabulary
    tok = task.model.tokenizer
    assert [ex.id for ex in task.examples] == [str(q[0]) for q in IN_VOCAB]
    for ex, (_, q, a, _, _) in zip(task.examples, IN_VOCAB):
        words = q[:-1].split() + ["?"]
        n_img = (SIDE // PATCH) ** 2
        assert ex.n_image == n_img == 9 and ex.x.shape == (3, SIDE, SIDE)  # every image squared to 96x96
        assert ex.features == [f"patch r{i}c{j}" for i in range(3) for j in range(3)] + words
        assert ex.label == ANSWERS.index(a) and list(ex.parts) == [0] * n_img + [1] * len(words)
        ids, fid = ex.text.input_ids, ex.text.feature_ids
        assert ids.tolist() == tok(" ".join(words))["input_ids"]  # the tokenizer's own encoding
        assert fid[0] == fid[-1] == -1 and (fid[1:-1] >= 0).all()  # [CLS] and [SEP] are never features
        assert not set(ids[fid >= 0].tolist()) & set(tok.all_special_ids)


def test_vilt_logits_are_the_checkpoints_own(fx):
    from transformers import ViltForQuestionAnswering, ViltProcessor

    task = task_of(on_fixture("vilt-vqav2", fx), fx)
    ref = ViltForQuestionAnswering.from_pretrained(str(fx["vilt"])).eval()
    processor = ViltProcessor.from_pretrained(str(fx["vilt"]))
    records = {r.id: r for r in HubVQA(path=str(fx["vqa"])).load(0).test}
    out = full(task)
    checked = 0
    for ex, row in zip(task.examples, out):
        q = next(x for x in QUESTIONS if str(x[0]) == ex.id)
        if q[3] != (SIDE, SIDE):
            continue  # resized by the task: the processor alone would not square it
        enc = processor(images=records[ex.id].image, text=q[1], return_tensors="pt")
        assert np.allclose(enc["pixel_values"][0].numpy(), ex.x, atol=1e-5)
        with torch.no_grad():
            want = ref(**enc).logits[0].numpy()
        assert np.abs(row - want).max() < 1e-5, (ex.id, row, want)
        checked += 1
    assert checked == 2
    # reproducible outputs (ViLT's patch sampling on a fixed seed) and the global random state untouched
    state = torch.get_rng_state()
    assert np.array_equal(full(task), out) and torch.equal(torch.get_rng_state(), state)


# -- the CLIP task --------------------------------------------------------------------------------
def test_clip_task_features_and_logits_are_the_checkpoints_own(fx):
    from transformers import CLIPModel, CLIPProcessor

    task = task_of(on_fixture("clip-cifar10", fx), fx)
    assert type(task.module.clip).__name__ == "CLIPModel" and task.module.image_shape == (3, SIDE, SIDE)
    assert task.label_names == CIFAR10 and task.info["model"]["caption_tokens"] == [6] * 10
    records = HubImageClasses(path=str(fx["cifar"])).load(0).test
    captions = [f"a photo of a {c}." for c in CIFAR10]
    ref = CLIPModel.from_pretrained(str(fx["clip"])).eval()
    processor = CLIPProcessor.from_pretrained(str(fx["clip"]))
    tok = processor.tokenizer
    out = full(task)
    for ex, r, row in zip(task.examples, records, out):
        words = [w for c in captions for w in split_words(c)]
        assert ex.n_image == (SIDE // PATCH) ** 2 and ex.features[ex.n_image:] == words
        assert ex.features[:ex.n_image] == [f"patch r{i}c{j}" for i in range(3) for j in range(3)]
        ids, fid = ex.text.input_ids, ex.text.feature_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and (fid[[0, -1]] == -1).all()
        assert ids[1:-1].tolist() == [t for c in captions for t in tok(c, add_special_tokens=False)["input_ids"]]
        enc = processor(text=captions, images=r.image, return_tensors="pt", padding=True)
        assert np.allclose(enc["pixel_values"][0].numpy(), ex.x, atol=1e-5)  # 32x32 upsampled to 96x96
        with torch.no_grad():
            want = ref(**enc).logits_per_image[0].numpy()
        assert np.abs(row - want).max() < 1e-5, (row, want)


def test_clip_pooling_with_a_config_naming_the_real_end_token(fx, tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    folder = tiny_clip(tmp_path / "clip-eos", seed=3, image_size=SIDE, legacy_eos=False)
    d = on_fixture("clip-cifar10", fx)
    d["model"]["params"]["name"] = str(folder)
    task = task_of(d, fx, n=2)
    ref = CLIPModel.from_pretrained(str(folder)).eval()
    assert ref.text_model.eos_token_id == task.model.tokenizer.eos_token_id != 2
    processor = CLIPProcessor.from_pretrained(str(folder))
    captions = [f"a photo of a {c}." for c in CIFAR10]
    for r, row in zip(HubImageClasses(path=str(fx["cifar"]), n_test=2).load(0).test, full(task)):
        with torch.no_grad():
            enc = processor(text=captions, images=r.image, return_tensors="pt", padding=True)
            want = ref(**enc).logits_per_image[0]
        assert np.abs(row - want.numpy()).max() < 1e-5


def test_clip_removal_policies_act_on_their_own_caption(fx):
    """pad: the removed word unattended; unk: <|endoftext|> in its place. Removing a word of caption k
    changes logit k only; removing a patch changes every logit."""
    for policy in ("pad", "unk"):
        task = task_of(on_fixture("clip-cifar10", fx, replacement=f"zero+{policy}"), fx, n=1)
        ex = task.examples[0]
        keep = np.ones((3, ex.n_features), bool)
        keep[1, ex.n_image + 6 * 3 + 4] = False  # the class word of caption 3 ("cat")
        keep[2, 0] = False
        out = task.model.outputs([(ex, k) for k in keep])
        changed = np.abs(out[1] - out[0]) > 1e-6
        assert changed.tolist() == [k == 3 for k in range(10)], policy
        assert (np.abs(out[2] - out[0]) > 1e-6).all()


# -- gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vilt-vqav2", "clip-cifar10"])
def test_gradient_explainers_score_both_parts(fx, name):
    task = task_of(on_fixture(name, fx), fx, n=2)
    probs = task.model.probs([(ex, np.ones(ex.n_features, bool)) for ex in task.examples])
    targets = probs.argmax(1).tolist()
    for ename in ("input_x_gradient", "integrated_gradients"):
        exp = Explainer.registry.get(ename)().explain(task, task.examples, targets, 0)
        assert exp.errors == [None, None], exp.errors
        for ex, a, t in zip(task.examples, exp.attributions, targets):
            img, txt = a[:ex.n_image], a[ex.n_image:]
            assert a.shape == (ex.n_features,) and np.isfinite(a).all()
            assert np.abs(img).max() > 0 and np.abs(txt).max() > 0, (ename, a)
            if name == "clip-cifar10":  # the target's logit reads its own caption only
                own = np.zeros(len(txt), bool)
                own[6 * t:6 * t + 6] = True
                assert np.abs(txt[own]).max() > 0 and (txt[~own] == 0).all(), (ename, t, txt)


def test_cli_runs_both_tasks_with_gradient_explainers(fx, tmp_path):
    for name in ("vilt-vqav2", "clip-cifar10"):
        path = tmp_path / f"{name}-fixture.yaml"
        path.write_text(yaml.safe_dump({**on_fixture(name, fx), "name": f"{name}-fixture"}))
        out = tmp_path / name
        code = main(["run", str(path), "--out", str(out), "--n", "2", "--no-progress", "--explainers",
                     "input_x_gradient,integrated_gradients", "--metrics", "comprehensiveness,sufficiency"])
        assert code == 0
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        scores = pd.read_csv(out / "scores.csv", keep_default_na=False)
        assert len(scores) == 2 * 2 * 2 and (scores.error == "").all(), scores
        assert np.isfinite(pd.to_numeric(scores.value)).all()


# -- bad input: one line each, exit code 2 ----------------------------------------------------------
def cli_error(d: dict, tmp_path, capsys, needle: str) -> str:
    k = len(list(tmp_path.glob("bad-*.yaml")))
    path = tmp_path / f"bad-{k}.yaml"
    path.write_text(yaml.safe_dump({**d, "name": "bad"}))
    code = main(["run", str(path), "--out", str(tmp_path / f"run-{k}"), "--n", "3", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert str(path) in err and needle in err, err
    return err


def test_tokenizer_larger_than_the_models_embedding(fx, tmp_path, capsys):
    folder = tiny_vilt(tmp_path / "small-vocab", image_size=SIDE, vocab_size=12)
    d = on_fixture("vilt-vqav2", fx)
    d["model"]["params"]["name"] = str(folder)
    cli_error(d, tmp_path, capsys, "field 'model': the processor does not match the model: its tokenizer has 28 "
                                   "tokens, the model's embedding 12")


def test_image_channels_the_model_does_not_take(fx, tmp_path, capsys):
    folder = tiny_vilt(tmp_path / "one-channel", image_size=SIDE, num_channels=1)
    d = on_fixture("vilt-vqav2", fx)
    d["model"]["params"]["name"] = str(folder)
    cli_error(d, tmp_path, capsys, "example 1001: field 'image': image is (3, 96, 96) (C, H, W), the model "
                                   "takes (1, 96, 96)")


def test_image_size_the_model_does_not_take(fx, tmp_path, capsys):
    folder = tiny_clip(tmp_path / "crop-64", image_size=SIDE, crop_size=64)
    d = on_fixture("clip-cifar10", fx)
    d["model"]["params"]["name"] = str(folder)
    cli_error(d, tmp_path, capsys, "example test-0: field 'image': image is (3, 64, 64) (C, H, W), the model "
                                   "takes (3, 96, 96)")
    d = on_fixture("vilt-vqav2", fx)
    d["model"]["params"]["image_size"] = 100
    cli_error(d, tmp_path, capsys, "field 'model.params.image_size': 100 is not a multiple of the model's patch "
                                   "size 32")


def test_empty_question(fx, tmp_path, capsys):
    rows = vqa_rows()
    rows[1] = {**rows[1], "question": "   "}
    data = vqa_dataset(tmp_path / "empty-question", rows)
    d = on_fixture("vilt-vqav2", fx)
    d["dataset"]["params"]["path"] = str(data)
    cli_error(d, tmp_path, capsys, "example 1002: field 'question': the question must be a non-empty string")


def test_missing_image_file(fx, tmp_path, capsys):
    from helpers_hub_vl import image

    data = tmp_path / "vqa-files"
    rows = vqa_rows()
    (data / "images").mkdir(parents=True)
    for k, r in enumerate(rows):
        name = f"COCO_val2014_{500 + k:012d}.png"
        if k != 1:
            image(k, QUESTIONS[k][3], QUESTIONS[k][4]).save(data / "images" / name)
        r["image"] = name
    vqa_dataset(data, rows, image_paths=True)
    d = on_fixture("vilt-vqav2", fx)
    d["dataset"]["params"].update(path=str(data), image_root=str(data / "images"))
    # images beside the dataset load from their files
    task = task_of(d, fx, n=1)
    assert task.examples[0].x.shape == (3, SIDE, SIDE)
    missing = data / "images" / "COCO_val2014_000000000501.png"
    cli_error(d, tmp_path, capsys, f"example 1002: field 'image': file '{missing}' not found")


@pytest.mark.parametrize("replacement,needle", [
    ("zero+delete", "field 'replacement': text policy 'delete' does not work with hub-clip-zero-shot: the captions"),
    ("zero+mask", "field 'replacement': the tokenizer of '{clip}' has no mask token; use another text policy "
                  "(unk, pad)"),
])
def test_clip_text_policies_it_cannot_take(fx, tmp_path, capsys, replacement, needle):
    cli_error(on_fixture("clip-cifar10", fx, replacement=replacement), tmp_path, capsys,
              needle.format(clip=fx["clip"]))


def test_wrong_checkpoints_and_datasets(fx, tmp_path, capsys):
    cli_error(on_fixture("vilt-vqav2", fx, model="clip"), tmp_path, capsys,
              f"field 'model.params.name': cannot load '{fx['clip']}' (a clip checkpoint (CLIPModel), not vilt)")
    d = on_fixture("clip-cifar10", fx)
    d["dataset"] = on_fixture("vilt-vqav2", fx)["dataset"]
    cli_error(d, tmp_path, capsys, "field 'dataset.source': model 'hub-clip-zero-shot' needs one candidate caption "
                                   "per class from the dataset (source 'hub-image-classes'); 'hub-vqa' gives none")
    rows = [r for r in vqa_rows() if r["multiple_choice_answer"] == "purple"]
    d = on_fixture("vilt-vqav2", fx)
    d["dataset"]["params"]["path"] = str(vqa_dataset(tmp_path / "unanswerable", rows))
    cli_error(d, tmp_path, capsys, "no test example's answer is in the answer vocabulary")
    d = on_fixture("vilt-vqav2", fx)
    d["dataset"]["params"]["split"] = "test"
    cli_error(d, tmp_path, capsys, "split 'test': cannot load")


# -- the catalogue ----------------------------------------------------------------------------------
@pytest.fixture
def offline(monkeypatch, tmp_path):
    import datasets.config as dc
    import huggingface_hub.constants as hc

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(dc, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))


def test_listed_not_default_and_needing_network_at_once(offline, tmp_path, capsys):
    assert main(["list", "tasks", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name, ds in (("vilt-vqav2", "lmms-lab/VQAv2"), ("clip-cifar10", "uoft-cs/cifar10")):
        spec = load_task_file(REPO / "tasks" / f"{name}.yaml")
        assert spec.modality == "multimodal" and not spec.default and rows[name]["modality"] == "multimodal"
        t0 = time.perf_counter()
        code = main(["run", str(REPO / "tasks" / f"{name}.yaml"), "--out", str(tmp_path / "run"), "--n", "2"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and f"tasks/{name}.yaml: needs network: dataset {ds}" in err
        assert time.perf_counter() - t0 < 10 and not (tmp_path / "run").exists()
