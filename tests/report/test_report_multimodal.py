"""Reports of a multimodal run: the examples file's image, patch and share fields; the example viewer
(the image, its attribution heat map with the gold patches outlined, the question coloured by
attribution, the explainer's and the model's text shares) in a real headless Chromium; the
"modality share" tables of the Markdown leaderboard and the HTML report; and, on the language-prior
split, image localisation metrics that skip every example counting in no summary rank.

One tiny real run (train-vqa, 1 epoch on 600 scenes: a weak model, which is all a display needs) of
the visual and the prior split of vqa-shapes.
"""
from __future__ import annotations

import copy
import html
import json
import re

import numpy as np
import pytest
import yaml

import helpers_vqa as H
from report.test_report import page_factory  # noqa: F401  (the Chromium fixture)
from xbench.cli import main
from xbench.report.html import build_report
from xbench.results.leaderboard import NOT_SCORED, load_leaderboard, task_summary

VISUAL, PRIOR = "tiny-vqa", "tiny-vqa-prior"
EXPLAINERS = ["occlusion", "saliency", "random"]
LOCALISATION = ["image_pointing_game", "image_relevance_mass_accuracy"]
METRICS = ["modality_share_gap", "comprehensiveness", "text_token_f1", *LOCALISATION]
N = 6


@pytest.fixture(scope="module")
def mm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mm")
    prior = copy.deepcopy(H.TINY_VQA_TASK)
    prior["name"] = PRIOR
    prior["dataset"]["params"]["test_questions"] = "prior"
    files = []
    for t in (H.TINY_VQA_TASK, prior):
        files.append(root / f"{t['name']}.yaml")
        files[-1].write_text(yaml.safe_dump(t))
    out = root / "run"
    with pytest.MonkeyPatch.context() as mp:  # a module fixture runs before the per-test cache fixture
        mp.setenv("XBENCH_CACHE", str(root / "cache"))
        rc = main(["run", *map(str, files), "--explainers", ",".join(EXPLAINERS), "--metrics", ",".join(METRICS),
                   "--n", str(N), "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def _viewer_data(page_html: str) -> dict:
    return json.loads(re.search(r'id="xb-data">(.*?)</script>', page_html, re.S).group(1))


def _notes(run, task, explainer):
    m = json.loads((run / "manifest.json").read_text())
    return m["tasks"][task]["explainers"][explainer]["metric_notes"]["modality_share_gap"]


def test_examples_hold_the_image_parts_and_shares(mm_run):
    d = json.loads((mm_run / "examples" / f"{VISUAL}.json").read_text())
    assert d["modality"] == "multimodal" and len(d["examples"]) == N
    for ex in d["examples"]:
        img, n_feat = ex["image"], len(ex["features"])
        assert {"id", "label", "target", "pred", "confidence", "p_target"} <= set(ex)
        assert (img["h"], img["w"]) == (24, 24) and len(img["pixels"]) == 24 * 24
        assert all(re.fullmatch(r"#[0-9a-f]{6}", p) for p in img["pixels"])
        parts = ex["parts"]
        n_img = parts.count("image")
        assert len(parts) == len(ex["rationale"]) == n_feat and n_img == 36  # 6 x 6 patches of 4 px
        assert parts == ["image"] * n_img + ["text"] * (n_feat - n_img)  # patches, then the question's tokens
        assert len(ex["pixel_feature"]) == 24 * 24 and set(ex["pixel_feature"]) == set(range(n_img))
        assert ex["pixel_feature"][:8] == [0, 0, 0, 0, 1, 1, 1, 1]  # row-major 4 x 4 patches
        assert set(ex["rationale"]) <= {0, 1}
        phi_i, phi_t, share = ex["phi_image"], ex["phi_text"], ex["model_text_share"]
        total = abs(phi_i) + abs(phi_t)
        assert total > 0 and 0.0 <= share <= 1.0
        # phi is stored to 6 decimals: the share from the stored phis is close to the stored share
        assert share == pytest.approx(abs(phi_t) / total, abs=2e-6 / total + 1e-6)


def test_report_holds_the_multimodal_viewer_data(mm_run):
    page = build_report(mm_run, plots=False)
    data = _viewer_data(page)
    examples = json.loads((mm_run / "examples" / f"{VISUAL}.json").read_text())["examples"]
    d = data[VISUAL]
    assert d["modality"] == "multimodal" and d["examples"] == examples
    assert set(d["attributions"]) == set(EXPLAINERS)
    for rows in d["attributions"].values():
        assert [len(r) for r in rows] == [len(e["features"]) for e in examples]
    assert page.count("<script") == 2


def test_markdown_and_html_modality_share_tables(mm_run):
    md = (mm_run / "leaderboard.md").read_text()
    lb = load_leaderboard(mm_run)
    page = build_report(mm_run, plots=False)
    for task in (VISUAL, PRIOR):
        section = md.split(f"## {task}\n", 1)[1].split("\n## ", 1)[0]
        assert "### modality share" in section
        table = section.split("### modality share", 1)[1].split("\n### ", 1)[0]
        rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
                for r in table.splitlines() if r.startswith("| ") and "explainer text share" not in r}
        assert set(rows) == set(EXPLAINERS)
        gap_cells = {r.split("|")[1].strip(): r.split("|")[2].strip()
                     for r in section.split("### modality\n", 1)[1].split("\n### ", 1)[0].splitlines()
                     if r.startswith("| ") and "modality_share_gap" not in r}
        for e in EXPLAINERS:
            n = _notes(mm_run, task, e)
            assert rows[e][:2] == [f"{n['explainer_text_share']:.3f}", f"{n['model_text_share']:.3f}"]
            assert rows[e][2] == gap_cells[e]  # the gap's mean [CI] #rank group, as in the modality table
            gap = lb[(lb.task == task) & (lb.explainer == e) & (lb.metric == "modality_share_gap")].iloc[0]
            assert rows[e][2].startswith(f"{gap['mean']:.3f} [{gap['ci_low']:.3f}, {gap['ci_high']:.3f}] #")
        # the model's share is the same for every explainer (all examples scored)
        assert len({rows[e][1] for e in EXPLAINERS}) == 1
    # the HTML report: one modality share table per task, the same numbers
    assert page.count("<h4>modality share</h4>") == 2
    sec = page.split(f'id="task-{VISUAL}"', 1)[1].split("<h4>modality share</h4>", 1)[1].split("</table>", 1)[0]
    n = _notes(mm_run, VISUAL, "occlusion")
    row = sec.split("<td data-v=\"occlusion\">occlusion</td>", 1)[1].split("</tr>", 1)[0]
    assert f">{n['explainer_text_share']:.3f}<" in row and f">{n['model_text_share']:.3f}<" in row


def test_all_skipped_localisation_counts_in_no_rank(mm_run):
    """On the prior split no example has gold pixels: the image localisation metrics skip every example;
    they rank no one (the summary has no localisation rank there, and "rank 1 in" does not count them)."""
    lb = load_leaderboard(mm_run)
    loc = lb[(lb.task == PRIOR) & lb.metric.isin(LOCALISATION)]
    assert len(loc) == len(LOCALISATION) * len(EXPLAINERS)
    assert (loc["n"] == 0).all() and (loc["n_failed"] == 0).all() and (loc["n_skipped"] == N).all()
    summary, _ = task_summary(lb)
    prior = summary[summary.task == PRIOR].set_index("explainer")
    assert "rank_localisation" not in prior.columns or prior["rank_localisation"].isna().all()
    n_quality = lb[(lb.task == PRIOR) & (lb.family != "cost")].groupby("explainer")["metric"].nunique()
    for e in EXPLAINERS:
        assert prior.loc[e, "rank_1"].endswith(f"/{n_quality[e] - len(LOCALISATION)}")
    # the overall rank: the mean of the scored families only
    fams = [c for c in prior.columns if c.startswith("rank_") and c not in ("rank_cost", "rank_overall", "rank_1")]
    for e in EXPLAINERS:
        assert prior.loc[e, "rank_overall"] == pytest.approx(np.nanmean(prior.loc[e, fams].astype(float)))
    md = (mm_run / "leaderboard.md").read_text().split(f"## {PRIOR}\n", 1)[1]
    assert "rank: localisation" not in md.split("### faithfulness", 1)[0]
    assert md.split("### localisation", 1)[1].split("\n### ", 1)[0].count(NOT_SCORED) == \
        len(LOCALISATION) * len(EXPLAINERS)
    page = build_report(mm_run, plots=False)
    assert page.split(f'id="task-{PRIOR}"', 1)[1].count(html.escape(NOT_SCORED)) == \
        len(LOCALISATION) * len(EXPLAINERS)


# ---------------------------------------------------------------------------- real headless Chromium

def _rgb(a, vmax):
    """The page's colour scale (``rgb()`` in the report's script)."""
    if a is None:
        return [221, 221, 221]
    t = max(-1.0, min(1.0, a / vmax))
    if t >= 0:
        return [255, _js_round(255 - t * 195), _js_round(255 - t * 205)]
    t = -t
    return [_js_round(255 - t * 215), _js_round(255 - t * 155), 255]


def _js_round(x):
    return int(np.floor(x + 0.5))


def _hex(p):
    return [int(p[1:3], 16), int(p[3:5], 16), int(p[5:7], 16)]


SAMPLE = """([kind, s]) => { const cv = document.querySelector('#xb-tokens canvas.mm.' + kind);
  const ctx = cv.getContext('2d'), w = cv.width / s, h = cv.height / s, out = [];
  const img = ctx.getImageData(0, 0, cv.width, cv.height).data;
  for (let r = 0; r < h; r++) for (let q = 0; q < w; q++) {
    const o = 4 * ((r * s + (s >> 1)) * cv.width + q * s + (s >> 1)); out.push([img[o], img[o + 1], img[o + 2]]); }
  return out; }"""


def _check_example(page, d, i, explainer):
    page.select_option("#xb-explainer", explainer)
    page.select_option("#xb-example", str(i))
    ex, a = d["examples"][i], d["attributions"][explainer][i]
    img, pf, parts, gold = ex["image"], ex["pixel_feature"], ex["parts"], ex["rationale"]
    h, w = img["h"], img["w"]
    vmax = max(abs(v) for v in a) or 1.0
    canvases = page.locator("#xb-tokens canvas.mm")
    assert canvases.count() == 2
    s = int(canvases.first.get_attribute("data-scale"))
    assert s >= 4 and page.evaluate("document.querySelector('#xb-tokens canvas.mm.heat').width") == w * s
    # the image as it is: every pixel's block has the pixel's colour
    assert page.evaluate(SAMPLE, ["input", s]) == [_hex(p) for p in img["pixels"]]
    # the heat map: the patch's attribution colour, blended (0.7) over the pixel's grey
    heat = np.array(page.evaluate(SAMPLE, ["heat", s]), float)
    want = []
    for j, p in enumerate(img["pixels"]):
        c, (r, g, b) = _rgb(a[pf[j]], vmax), _hex(p)
        grey = 0.299 * r + 0.587 * g + 0.114 * b
        want.append([_js_round(0.7 * c[k] + 0.3 * grey) for k in range(3)])
    assert np.abs(heat - np.array(want)).max() <= 1
    # the gold patches are outlined: black at the top edge of the gold region, nowhere else at a block's centre
    top = [j for j in range(h * w) if gold[pf[j]] and (j < w or not gold[pf[j - w]])]
    if top:
        edge = page.evaluate("""([s, js, w]) => { const cv = document.querySelector('#xb-tokens canvas.mm.heat');
          const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
          return js.map(j => { const o = 4 * ((Math.floor(j / w) * s) * cv.width + (j % w) * s + (s >> 1));
            return [d[o], d[o + 1], d[o + 2]]; }); }""", [s, top, w])
        assert all(c == [0, 0, 0] for c in edge)
    # the question: its words, coloured by attribution, the gold ones underlined
    toks = page.locator("#xb-tokens .question .tok")
    text = [j for j, p in enumerate(parts) if p == "text"]
    assert toks.all_text_contents() == [ex["features"][j] for j in text]
    for k, j in enumerate(text):
        tok = toks.nth(k)
        assert float(tok.get_attribute("data-a")) == pytest.approx(a[j])
        assert ("gold" in tok.get_attribute("class").split()) == bool(gold[j])
        assert tok.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb({}, {}, {})".format(*_rgb(a[j], vmax))
    # the share line: the explainer's text share from the attributions beside the model's
    absa = np.abs(np.asarray(a, float))
    expected = absa[text].sum() / absa.sum()
    share = page.locator("#xb-tokens .share")
    assert float(share.get_attribute("data-explainer")) == pytest.approx(expected, rel=1e-12)
    line = share.text_content()
    assert f"explainer {expected:.3f}" in line and f"{ex['model_text_share']:.3f}" in line
    assert f"φ_image = {_precision3(ex['phi_image'])}, φ_text = {_precision3(ex['phi_text'])})" in line
    return len(top)


def _precision3(v):
    """JavaScript's ``v.toPrecision(3)`` for 1e-6 ≤ |v| < 1000 (and 0)."""
    return np.format_float_positional(v, precision=3, unique=False, fractional=False, trim="k")


def test_multimodal_viewer_in_chromium(mm_run, tmp_path, page_factory):  # noqa: F811
    path = tmp_path / "report.html"
    path.write_text(build_report(mm_run, plots=False))
    page = page_factory(path)
    data = _viewer_data(path.read_text())
    outlined = {}
    for task in (VISUAL, PRIOR):
        page.select_option("#xb-task", task)
        d = data[task]
        shown = ((0, "occlusion"), (1, "saliency"), (2, "random"))
        outlined[task] = sum(_check_example(page, d, i, e) for i, e in shown)
    assert outlined[VISUAL] > 0 and outlined[PRIOR] == 0  # prior questions have no gold pixels
    assert page.errors == [] and page.dialogs == []
    assert page.evaluate("document.querySelectorAll('script').length") == 2
