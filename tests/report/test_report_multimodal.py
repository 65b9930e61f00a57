"""The report's example viewer for a multimodal task: the image, its heat map, the question coloured by
attribution, and the explainer's and the model's text shares, in a real headless Chromium."""
import json
import re

import numpy as np
import pytest
import yaml

import helpers_vqa as H
from report.test_report import page_factory  # noqa: F401  (the Chromium fixture)
from xbench.cli import main
from xbench.report.html import build_report


@pytest.fixture(scope="module")
def mm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mm")
    task = root / "tiny.yaml"
    task.write_text(yaml.safe_dump(H.TINY_VQA_TASK))
    out = root / "run"
    assert main(["run", str(task), "--explainers", "occlusion,random", "--metrics",
                 "modality_share_gap,image_pointing_game", "--n", "4", "--out", str(out), "--no-progress"]) in (0, 2)
    return out


def test_examples_hold_the_image_parts_and_shares(mm_run):
    d = json.loads((mm_run / "examples" / "tiny-vqa.json").read_text())
    assert d["modality"] == "multimodal"
    ex = d["examples"][0]
    assert ex["image"]["h"] == 24 and len(ex["image"]["pixels"]) == 576 and len(ex["pixel_feature"]) == 576
    assert ex["parts"][:36] == ["image"] * 36 and set(ex["parts"][36:]) == {"text"}
    assert 0.0 <= ex["model_text_share"] <= 1.0


def test_multimodal_viewer_in_chromium(mm_run, tmp_path, page_factory):  # noqa: F811
    path = tmp_path / "report.html"
    path.write_text(build_report(mm_run, plots=False))
    page = page_factory(path)
    page.select_option("#xb-explainer", "occlusion")
    page.select_option("#xb-example", "0")
    assert page.locator("#xb-tokens .grid.mm").count() == 2  # the image and its heat map
    assert page.locator("#xb-tokens .grid.mm").first.locator("div").count() == 576
    data = json.loads(re.search(r'id="xb-data">(.*?)</script>', path.read_text(), re.S).group(1))
    rec = data["tiny-vqa"]["examples"][0]
    a = np.abs(np.asarray(data["tiny-vqa"]["attributions"]["occlusion"][0], float))
    words = [f for f, p in zip(rec["features"], rec["parts"]) if p == "text"]
    assert page.locator("#xb-tokens .question .tok").all_text_contents() == words
    share = page.locator("#xb-tokens .share").text_content()
    text = a[[p == "text" for p in rec["parts"]]].sum() / a.sum()
    assert f"explainer {text:.3f}" in share and f"model (two-player Shapley) {rec['model_text_share']:.3f}" in share
    assert page.errors == [] and page.dialogs == []
