"""The HTML report: self-contained, escaped, and working in a real headless Chromium."""
from __future__ import annotations

import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import helpers  # noqa: F401  (registers the test model source)
from helpers import LinearSource
from xbench.cli import main
from xbench.data.base import DatasetSource, Record, Splits
from xbench.explainers.base import Explainer
from xbench.metrics.base import Metric
from xbench.report.html import build_report, write_report
from xbench.run.config import RunConfig
from xbench.run.runner import Runner
from xbench.tasks.catalogue import parse_task

HOSTILE = "<script>alert(1)</script>"
WORDS = [
    ["great", HOSTILE, "the", "film"],
    ["bad", "</script><b>x</b>", "plot", "&amp;", "fine"],
    ["the", '"quoted"', "great", "fine", "film", "bad"],
    ["plot", "bad", "the", "<img src=x onerror=alert(2)>"],
]


class HostileRecords(DatasetSource):
    """Sentences whose words are HTML and script; the gold rationale is the sentiment word."""

    name = "test-hostile"

    def load(self, seed):
        sentiment = {"great", "fine", "bad"}
        recs = [Record(f"h{i}", w, int("great" in w or "fine" in w), [int(t in sentiment) for t in w])
                for i, w in enumerate(WORDS)]
        return Splits(recs, recs, ["neg", "pos<b>"])


assert LinearSource.name == "test-linear"

TASK = {"name": "hostile", "modality": "text", "granularity": "words", "replacement": "mask", "rationale": True,
        "max_length": 16, "dataset": {"source": "test-hostile"}, "model": {"source": "test-linear"}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile-run")
    cfg = RunConfig([parse_task(dict(TASK), "hostile.yaml")],
                    [("occlusion", {}), ("integrated_gradients", {"n_steps": 8}), ("random", {})],
                    [("deletion_auc", {"steps": 4}), ("insertion_auc", {"steps": 4}), ("comprehensiveness", {}),
                     ("token_f1", {}), ("seconds", {})], seed=0)
    Runner(cfg, out, progress=False, log=lambda m: None).run()
    return out


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_run_stores_examples_and_curves(run_dir):
    ex = json.loads((run_dir / "examples" / "hostile.json").read_text())
    assert [e["features"] for e in ex["examples"]] == WORDS
    assert ex["label_names"] == ["neg", "pos<b>"]
    first = ex["examples"][0]
    assert first["rationale"] == [1, 0, 0, 0] and 0.5 <= first["confidence"] <= 1
    assert first["pred"] == 1 and first["target"] == 1  # logit 2 for "great": predicted positive
    with np.load(run_dir / "curves" / "hostile" / "occlusion.npz") as z:
        d = z["deletion_auc"]
        assert d.shape == (4, 5) and sorted(z.files) == ["deletion_auc", "ids", "insertion_auc"]
    # step 0 of deletion is the full input: p(target) of the unperturbed example
    p_full = [e["p_target"] for e in ex["examples"]]
    np.testing.assert_allclose(d[:, 0], p_full, rtol=1e-6)


def test_report_escapes_all_dataset_text(run_dir, tmp_path):
    page = build_report(run_dir, plots=False)
    for raw in (HOSTILE, "</script><b>x</b>", "<img src=x", "pos<b>"):
        assert raw not in page
    assert page.count("<script") == 2  # the JSON data block and the page's own script, nothing else
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in page
    tags = _Tags()
    tags.feed(page)
    assert not [t for t, a in tags.tags if t == "img" and not a.get("src", "").startswith("data:")]
    # no network: nothing is loaded from anywhere but the file itself
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    csp = next(a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp
    # the JSON block parses back to the same words
    blob = re.search(r'<script type="application/json" id="xb-data">(.*?)</script>', page, re.S).group(1)
    data = json.loads(blob)
    assert [e["features"] for e in data["hostile"]["examples"]] == WORDS
    assert set(data["hostile"]["attributions"]) == {"occlusion", "integrated_gradients", "random"}


def test_report_cli(run_dir, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(run_dir), "--html", str(out), "--examples", "2"]) == 0
    page = out.read_text()
    data = json.loads(re.search(r'id="xb-data">(.*?)</script>', page, re.S).group(1))
    assert len(data["hostile"]["examples"]) == 2
    assert 'src="data:image/png;base64,' in page  # the curve plots are inlined
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


# ---------------------------------------------------------------------------- real headless Chromium

def _browser():
    """(sync_playwright, chromium path) or a skip with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    return sync_playwright, exe


ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page_factory():
    sync_playwright, exe = _browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=ARGS, headless=True)
        opened = []

        def open_page(path: Path):
            page = browser.new_page()
            page.dialogs, page.errors = [], []
            page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
            page.goto(path.resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=10_000)
            opened.append(page)
            return page

        yield open_page
        browser.close()


def _column(page, table, idx):
    return page.evaluate("([t, i]) => Array.from(document.querySelectorAll('table.sortable')[t].tBodies[0].rows)"
                         ".map(r => r.cells[i].getAttribute('data-v'))", [table, idx])


def test_report_in_chromium(run_dir, tmp_path, page_factory):
    path = write_report(run_dir, tmp_path / "report.html")
    page = page_factory(path)
    # the tables render
    n_tables = page.locator("table.sortable").count()
    assert n_tables >= 4
    assert page.locator("table.sortable").first.is_visible()
    # sorting: click a numeric column of the faithfulness table, ascending then descending
    t = page.evaluate("Array.from(document.querySelectorAll('table.sortable')).findIndex("
                      "t => t.caption && t.caption.textContent.startsWith('faithfulness'))")
    header = page.locator("table.sortable").nth(t).locator("th").nth(1)
    header.click()
    up = [float(v) for v in _column(page, t, 1)]
    assert up == sorted(up) and header.get_attribute("aria-sort") == "ascending"
    header.click()
    down = [float(v) for v in _column(page, t, 1)]
    assert down == sorted(down, reverse=True) and down != up
    # sorting by the explainer name (text)
    page.locator("table.sortable").nth(t).locator("th").nth(0).click()
    names = _column(page, t, 0)
    assert names == sorted(names)
    # the viewer shows every token of the chosen example, as text, coloured by attribution
    page.select_option("#xb-explainer", "occlusion")
    page.select_option("#xb-example", "0")
    toks = page.locator("#xb-tokens .tok")
    assert toks.count() == len(WORDS[0])
    assert toks.all_text_contents() == WORDS[0]
    assert toks.nth(1).text_content() == HOSTILE
    assert toks.nth(0).get_attribute("class") == "tok gold"  # "great" is the gold rationale
    occl = json.loads(re.search(r'id="xb-data">(.*?)</script>', path.read_text(), re.S).group(1))
    a0 = occl["hostile"]["attributions"]["occlusion"][0]
    assert [float(toks.nth(j).get_attribute("data-a")) for j in range(len(WORDS[0]))] == pytest.approx(a0)
    assert toks.nth(0).evaluate("e => getComputedStyle(e).backgroundColor") != \
        toks.nth(2).evaluate("e => getComputedStyle(e).backgroundColor")  # 2.0 vs 0.0
    meta = page.locator("#xb-meta").text_content()
    assert "prediction: pos<b>" in meta and "confidence" in meta
    page.select_option("#xb-example", "3")
    assert page.locator("#xb-tokens .tok").all_text_contents() == WORDS[3]
    # no script from the data ran, no errors, nothing blocked
    assert page.dialogs == [] and page.errors == []
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert page.evaluate("document.querySelectorAll('#xb-tokens b, #xb-tokens img').length") == 0


def test_published_report_in_chromium(page_factory):
    """The committed report: every task's viewer renders (text tokens, image grids, tabular rows)."""
    path = Path(__file__).resolve().parents[2] / "leaderboards" / "default" / "report.html"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `xbench publish`")
    page = page_factory(path)
    assert page.locator("table.sortable").count() > 10
    for task in page.evaluate("Array.from(document.querySelectorAll('#xb-task option')).map(o => o.value)"):
        page.select_option("#xb-task", task)
        modality = page.evaluate(f"JSON.parse(document.getElementById('xb-data').textContent)[{json.dumps(task)}]"
                                 ".modality")
        n_feat = page.evaluate(f"JSON.parse(document.getElementById('xb-data').textContent)[{json.dumps(task)}]"
                               ".examples[0].features.length")
        if modality == "text":
            assert page.locator("#xb-tokens .tok").count() == n_feat
        elif modality == "lm":  # the prompt's tokens, then the explained answer
            assert page.locator("#xb-tokens .tok:not(.target)").count() == n_feat
            assert page.locator("#xb-tokens .tok.target").count() == 1
            assert "explained: next_token of" in page.locator("#xb-meta").inner_text()
        elif modality == "image":
            assert page.locator("#xb-tokens .grid div").count() == 2 * n_feat
        else:
            assert page.locator("#xb-tokens tr").count() == n_feat + 1
    assert page.errors == [] and page.dialogs == []


class _HostileExplainer(Explainer):
    """Scores 1, 2, ... (a plugin whose name is markup)."""

    def attribute(self, inputs, seed):
        return np.arange(1.0, inputs.example.n_features + 1)


class _HostileMetric(Metric):
    """A plugin metric whose name is markup."""

    family, direction, ideal, range, formula = "faithfulness", "higher", 1.0, (0.0, 1.0), "0.5"

    def score_one(self, ctx, i, state):
        return 0.5


NAMES = {"task": "t<img src=x onerror=alert(3)>", "explainer": "e<svg onload=alert(4)>",
         "metric": 'm"><b onmouseover=alert(5)>', "suite": "s</script><script>alert(6)</script>"}
_HostileExplainer.name, _HostileMetric.name = NAMES["explainer"], NAMES["metric"]
Explainer.registry.add(_HostileExplainer)
Metric.registry.add(_HostileMetric)


@pytest.fixture(scope="module")
def hostile_names_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hostile-names") / "run"
    cfg = RunConfig([parse_task({**TASK, "name": NAMES["task"]}, "names.yaml")],
                    [(NAMES["explainer"], {}), ("random", {})], [(NAMES["metric"], {}), ("comprehensiveness", {})],
                    seed=0, suite=NAMES["suite"])
    Runner(cfg, out, progress=False, log=lambda m: None).run()
    return out


def test_task_explainer_metric_and_suite_names_are_escaped(hostile_names_run):
    page = build_report(hostile_names_run, plots=True)
    for raw in NAMES.values():
        assert raw not in page
    for name in NAMES.values():
        assert html.escape(name) in page or json.dumps(name).replace("<", "\\u003c").replace(">", "\\u003e") in page
    assert page.count("<script") == 2
    tags = _Tags()
    tags.feed(page)
    assert not [t for t, a in tags.tags if t == "svg" or any(k.startswith("on") for k in a)
                or (t == "img" and not a.get("src", "").startswith("data:"))]


def test_hostile_names_run_no_script_in_chromium(hostile_names_run, tmp_path, page_factory):
    path = write_report(hostile_names_run, tmp_path / "names.html")
    page = page_factory(path)
    assert page.dialogs == [] and page.errors == []
    assert page.evaluate("document.querySelectorAll('script').length") == 2
    assert NAMES["explainer"] in page.locator("body").inner_text()  # shown as text
