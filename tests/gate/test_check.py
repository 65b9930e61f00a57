"""``xbench check``: the regression gate (paired Wilcoxon + Holm, minimum effect, CI fallback),
quality contracts, and the JSON / JUnit outputs.

The runs use the analytic linear bag-of-words model (tests/helpers.py) on 120 generated sentences
that the model classifies as positive, so the explained logit is exactly Σ W[word] and Integrated
Gradients' attributions are the exact weights. That ranking is optimal for comprehensiveness and
sufficiency on every example (removing the k largest weights lowers the logit the most), so adding
noise to it can only lower comprehensiveness: the degraded runs are worse by construction, and the
tests check that per example.
"""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import helpers  # noqa: F401  (registers the test-linear model source)
from helpers import WEIGHTS
from xbench.gate.check import CELL_FIELDS, DEFAULT_MIN_EFFECT, check, compare, to_junit
from xbench.cli import main
from xbench.gate.contract import check_contract, load_contract
from xbench.data.base import DatasetSource, Record, Splits
from xbench.explainers.gradient import IntegratedGradients
from xbench.results.leaderboard import load_leaderboard, read_scores
from xbench.report.tables import write_leaderboard
from xbench.results.leaderboard import SCORE_COLUMNS
from xbench.run.config import RunConfig
from xbench.run.runner import Runner
from xbench.core.seeding import np_rng
from xbench.tasks.catalogue import parse_task


class PositiveSentences(DatasetSource):
    """``n`` seeded sentences over the linear model's words, each with a positive total weight (so
    the model predicts, and explains, class 1); the gold rationale is the words of non-zero weight."""

    name = "test-check-sentences"
    params = {"n": 120}

    def load(self, seed):
        rng = np_rng("test-check-sentences", seed)
        vocab, recs = list(WEIGHTS), []
        for i in range(self.p["n"]):
            words = [str(w) for w in rng.choice(vocab, size=int(rng.integers(5, 9)))]
            while sum(WEIGHTS[w] for w in words) <= 0:
                words[int(rng.integers(len(words)))] = str(rng.choice(["great", "fine"]))
            recs.append(Record(f"s{i}", words, 1, [int(WEIGHTS[w] != 0) for w in words]))
        return Splits(recs, recs, ["neg", "pos"])


class NoisyIG(IntegratedGradients):
    """Integrated Gradients plus seeded Gaussian noise of scale ``noise`` on every token's score: a
    deliberately degraded explainer (noise 0 is plain IG)."""

    name = "noisy_ig"
    params = {**IntegratedGradients.params, "n_steps": 8, "noise": 0.0}

    def attribute(self, inputs, seed):
        s = super().attribute(inputs, seed)
        return s + self.p["noise"] * np_rng("noisy_ig", seed).standard_normal(s.shape)


TASK = {"name": "check-linear", "modality": "text", "granularity": "tokens", "replacement": "mask",
        "rationale": True, "max_length": 16, "dataset": {"source": "test-check-sentences"},
        "model": {"source": "test-linear"}}
METRICS = [("comprehensiveness", {}), ("sufficiency", {}), ("token_f1", {}), ("seconds", {})]
STRONG, SLIGHT = 3.0, 0.4


def _run(out: Path, noise: float) -> Path:
    cfg = RunConfig([parse_task(dict(TASK), "check-linear.yaml")], [("noisy_ig", {"noise": noise}), ("occlusion", {})],
                    METRICS, seed=0)
    Runner(cfg, out, progress=False, log=lambda m: None).run()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("check-runs")
    return {"base": _run(root / "base", 0.0), "strong": _run(root / "strong", STRONG),
            "slight": _run(root / "slight", SLIGHT)}


def _paired(a: Path, b: Path, explainer: str, metric: str) -> np.ndarray:
    """Per-example differences new − baseline of one cell, read straight from the scores files."""
    sa, sb = read_scores(a / "scores.csv"), read_scores(b / "scores.csv")
    pick = [(s[(s.explainer == explainer) & (s.metric == metric)].set_index("example")["value"]) for s in (sa, sb)]
    return (pick[1] - pick[0].reindex(pick[1].index)).to_numpy(np.float64)


def _cell(df: pd.DataFrame, explainer: str, metric: str) -> dict:
    rows = df[(df.explainer == explainer) & (df.metric == metric)].to_dict("records")
    assert len(rows) == 1
    return rows[0]


# ----------------------------------------------------------------------------- the gate on real runs

def test_self_comparison_passes(runs, capsys):
    assert main(["check", "--baseline", str(runs["base"]), str(runs["base"])]) == 0
    out = capsys.readouterr().out
    assert "8 cells: 8 unchanged" in out and out.rstrip().endswith("PASS")
    df = compare(runs["base"], runs["base"])
    assert (df["test"] == "identical").all() and (df["p"] == 1.0).all() and (df["verdict"] == "unchanged").all()
    assert (df["delta"] == 0).all() and (df[df.metric != "token_f1"]["n_paired"] == 120).all()
    assert (df[df.metric == "token_f1"]["n_paired"] == 115).all()  # plausibility leaves the 5 misclassified out


def test_degraded_explainer_is_a_regression(runs, capsys):
    d = _paired(runs["base"], runs["strong"], "noisy_ig", "comprehensiveness")
    # the degradation is real: no example gains, most lose (exact IG's ranking is optimal here)
    assert len(d) == 120 and (d <= 1e-12).all() and (d < 0).sum() > 60
    df = compare(runs["base"], runs["strong"])
    c = _cell(df, "noisy_ig", "comprehensiveness")
    assert c["test"] == "wilcoxon" and c["n_paired"] == 120
    assert c["delta"] == pytest.approx(d.mean()) and c["delta"] < -0.1  # higher is better: delta = mean(d)
    p = stats.wilcoxon(d, zero_method="wilcox", method="asymptotic").pvalue
    assert c["p"] == pytest.approx(p)
    assert c["verdict"] == "regressed" and c["fails"] and c["p_holm"] < 0.05
    s = _cell(df, "noisy_ig", "sufficiency")  # lower is better: the rise is a negative delta
    assert s["verdict"] == "regressed" and s["delta"] == pytest.approx(-_paired(runs["base"], runs["strong"],
                                                                           "noisy_ig", "sufficiency").mean())
    # occlusion did not change: bitwise-identical scores, p = 1 without a test
    o = _cell(df, "occlusion", "comprehensiveness")
    assert o["test"] == "identical" and o["p"] == 1.0 and o["verdict"] == "unchanged"
    # Holm over every compared cell (identical ones count, with p = 1)
    tested = df[df["test"].isin(["wilcoxon", "identical"])]
    m = len(tested)
    order = np.argsort(tested["p"].to_numpy(), kind="stable")
    first = tested.iloc[order[0]]
    assert m == 8 and first["p_holm"] == pytest.approx(min(1.0, m * first["p"]), rel=1e-9, abs=0)
    # cost is reported, never gated by default
    sec = _cell(df, "noisy_ig", "seconds")
    assert not sec["gate"] and not sec["fails"]
    assert main(["check", "--baseline", str(runs["base"]), str(runs["strong"])]) == 1
    out = capsys.readouterr().out
    assert "check-linear: noisy_ig comprehensiveness regressed: " in out and "FAIL: 3 problem(s)" in out


def test_change_below_the_minimum_effect_passes(runs, capsys):
    d = _paired(runs["base"], runs["slight"], "noisy_ig", "comprehensiveness")
    assert (d <= 1e-12).all() and (d < 0).sum() >= 10  # really worse on some examples, never better
    delta = d.mean()  # -0.0059: significant with 120 examples, but below the default 0.02
    assert -DEFAULT_MIN_EFFECT < delta < 0
    df = compare(runs["base"], runs["slight"])
    c = _cell(df, "noisy_ig", "comprehensiveness")
    assert c["delta"] == pytest.approx(delta) and c["p_holm"] < 0.05 and c["verdict"] == "unchanged"
    q = df[df["gate"]]
    assert (q["delta"].abs() < DEFAULT_MIN_EFFECT).all() and not q["fails"].any()
    assert main(["check", "--baseline", str(runs["base"]), str(runs["slight"])]) == 0
    # with no minimum effect the same change fails the gate: the threshold is what let it pass
    capsys.readouterr()
    assert main(["check", "--baseline", str(runs["base"]), str(runs["slight"]), "--min-effect", "0"]) == 1
    assert "noisy_ig comprehensiveness regressed" in capsys.readouterr().out
    # per metric: only the metric named gets the stricter threshold
    df2 = compare(runs["base"], runs["slight"], min_effect={"comprehensiveness": 0.001})
    assert _cell(df2, "noisy_ig", "comprehensiveness")["verdict"] == "regressed"
    assert _cell(df2, "noisy_ig", "token_f1")["min_effect"] == DEFAULT_MIN_EFFECT


def test_rerun_of_the_baseline_config_passes(runs, tmp_path, capsys):
    out = tmp_path / "rerun"
    assert main(["check", "--baseline", str(runs["base"] / "leaderboard.json"), "--out", str(out)]) == 0
    assert (out / "scores.csv").exists()
    df = compare(runs["base"], out)
    quality = df[df["family"] != "cost"]
    assert (quality["test"] == "identical").all()  # deterministic: the same per-example scores


def test_ci_fallback_without_scores(runs, tmp_path):
    base = tmp_path / "published"
    base.mkdir()
    for f in ("leaderboard.json", "manifest.json"):  # a committed leaderboard without scores.csv
        shutil.copy(runs["base"] / f, base / f)
    df = compare(base / "leaderboard.json", runs["strong"])
    assert (df["test"] == "ci").all() and df["p"].isna().all() and (df["n_paired"] == 0).all()
    lb_b, lb_n = load_leaderboard(base), load_leaderboard(runs["strong"])
    key = (lb_b.explainer == "noisy_ig") & (lb_b.metric == "comprehensiveness")
    b, n = lb_b[key].iloc[0], lb_n[(lb_n.explainer == "noisy_ig") & (lb_n.metric == "comprehensiveness")].iloc[0]
    assert n["ci_high"] < b["ci_low"]  # disjoint 95% CIs
    c = _cell(df, "noisy_ig", "comprehensiveness")
    assert c["verdict"] == "regressed" and c["delta"] == pytest.approx(n["mean"] - b["mean"])
    assert "baseline has no scores.csv" in c["note"]
    assert _cell(df, "occlusion", "comprehensiveness")["verdict"] == "unchanged"  # same CI: overlap
    assert main(["check", "--baseline", str(base / "leaderboard.json"), str(runs["strong"])]) == 1
    assert main(["check", "--baseline", str(base), str(runs["slight"])]) == 0  # overlapping CIs


# ----------------------------------------------------------------------------- hand-computed cases

def _fake_run(out: Path, cells: dict[tuple[str, str, str], list]) -> Path:
    """A run directory from per-example values (None = a failed example)."""
    rows = []
    for (task, expl, metric), values in cells.items():
        for i, v in enumerate(values):
            rows.append((task, expl, metric, f"e{i}", np.nan if v is None else float(v),
                         "failed" if v is None else "", "mask", 1, 0))
    out.mkdir(parents=True, exist_ok=True)
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    scores.to_csv(out / "scores.csv", index=False)
    write_leaderboard(out, scores)
    return out


BASE = [0.5 + 0.01 * i for i in range(10)]


def test_hand_computed_wilcoxon_holm_and_directions(tmp_path):
    drop = [0.05 + 0.01 * i for i in range(10)]  # distinct, all of one sign: exact test
    base = _fake_run(tmp_path / "a", {("t", "e", "comprehensiveness"): BASE, ("t", "e", "token_f1"): BASE,
                                      ("t", "e", "sufficiency"): BASE, ("t", "e", "seconds"): BASE})
    new = _fake_run(tmp_path / "b", {("t", "e", "comprehensiveness"): [b - d for b, d in zip(BASE, drop)],
                                     ("t", "e", "token_f1"): BASE,
                                     ("t", "e", "sufficiency"): [b - d for b, d in zip(BASE, drop)],
                                     ("t", "e", "seconds"): [b + 1 for b in BASE]})
    df = compare(base, new)
    c = _cell(df, "e", "comprehensiveness")
    # exact two-sided p of 10 same-signed distinct differences: 2 / 2^10; Holm over 4 cells: x 4
    assert c["p"] == pytest.approx(2 / 2 ** 10) and c["p_holm"] == pytest.approx(4 * 2 / 2 ** 10)
    assert c["delta"] == pytest.approx(-0.095) and c["verdict"] == "regressed" and c["fails"]
    s = _cell(df, "e", "sufficiency")  # lower is better: the same drop is an improvement
    assert s["delta"] == pytest.approx(0.095) and s["verdict"] == "improved" and not s["fails"]
    assert _cell(df, "e", "token_f1")["test"] == "identical"
    sec = _cell(df, "e", "seconds")  # 1 s slower per example: regressed, but cost is not gated
    assert sec["verdict"] == "regressed" and not sec["fails"]
    assert _cell(compare(base, new, include_cost=True), "e", "seconds")["fails"]
    assert main(["check", "--baseline", str(base), str(new), "--min-effect", "comprehensiveness=0.1"]) == 0
    assert main(["check", "--baseline", str(base), str(new), "--min-effect", "comprehensiveness=0.1",
                 "--include-cost"]) == 1
    # a stricter alpha than the Holm p turns the regression into "unchanged"
    assert _cell(compare(base, new, alpha=0.005), "e", "comprehensiveness")["verdict"] == "unchanged"


def test_missing_new_and_failed_cells(tmp_path, capsys):
    base = _fake_run(tmp_path / "a", {("t", "e", "comprehensiveness"): BASE, ("t", "gone", "comprehensiveness"): BASE,
                                      ("t", "e", "token_f1"): BASE})
    new = _fake_run(tmp_path / "b", {("t", "e", "comprehensiveness"): BASE, ("t", "added", "comprehensiveness"): BASE,
                                     ("t", "e", "token_f1"): [None] * 10})
    df = compare(base, new)
    assert _cell(df, "gone", "comprehensiveness")["verdict"] == "missing"
    assert _cell(df, "added", "comprehensiveness")["verdict"] == "new"
    failed = _cell(df, "e", "token_f1")
    assert failed["verdict"] == "missing" and "no successful example in the new run" in failed["note"]
    assert df["fails"].sum() == 2
    assert main(["check", "--baseline", str(base), str(new)]) == 1
    out = capsys.readouterr().out
    assert "t: gone comprehensiveness missing (in the baseline only)" in out


def test_partial_overlap_pairs_common_examples(tmp_path):
    base = _fake_run(tmp_path / "a", {("t", "e", "comprehensiveness"): BASE})
    new = _fake_run(tmp_path / "b", {("t", "e", "comprehensiveness"): [None, None] + [b - 0.1 for b in BASE[2:]]})
    c = _cell(compare(base, new), "e", "comprehensiveness")
    assert c["n_paired"] == 8 and c["test"] == "wilcoxon" and c["delta"] == pytest.approx(-0.1)
    assert "n_failed 0 → 2" in c["note"]


def test_bad_input_exits_2(runs, tmp_path, capsys):
    assert main(["check", str(runs["base"])]) == 2
    assert "needs --baseline" in capsys.readouterr().err
    assert main(["check", "--baseline", str(tmp_path / "nope"), str(runs["base"])]) == 2
    assert main(["check", "--baseline", str(runs["base"]), str(runs["base"]), "--min-effect", "comprehensivness=1"]) == 2
    assert "did you mean 'comprehensiveness'" in capsys.readouterr().err
    assert main(["check", "--baseline", str(runs["base"]), str(runs["base"]), "--min-effect", "x"]) == 2
    assert main(["check", "--baseline", str(runs["base"]), str(runs["base"]), "--alpha", "2"]) == 2
    assert main(["check", "--contract", str(tmp_path / "c.yaml")]) == 2
    assert "needs RUN_DIR" in capsys.readouterr().err


# ----------------------------------------------------------------------------- contracts

def _contract(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "contract.yaml"
    p.write_text(text)
    return p


def test_contract_pass_and_fail(runs, tmp_path, capsys):
    lb = load_leaderboard(runs["strong"])
    mean = float(lb[(lb.explainer == "noisy_ig") & (lb.metric == "comprehensiveness")]["mean"].iloc[0])
    text = ("tasks: [check-linear]\nexplainers:\n  noisy_ig:\n    min: {comprehensiveness: 0.3, token_f1: 0.5}\n"
            "    max: {sufficiency: 0.05}\n    max_rank: 1\n  occlusion:\n    max_rank: {comprehensiveness: 1}\n")
    c = _contract(tmp_path, text)
    assert check_contract(runs["base"], c) == []
    assert main(["check", str(runs["base"]), "--contract", str(c)]) == 0
    capsys.readouterr()
    bad = check_contract(runs["strong"], c)
    msgs = [b.message for b in bad]
    assert f"check-linear: noisy_ig comprehensiveness = {mean:.4g} < min 0.3" in msgs
    assert any(m.startswith("check-linear: noisy_ig sufficiency = ") and m.endswith("> max 0.05") for m in msgs)
    assert any(m.startswith("check-linear: noisy_ig overall rank = 2 > max_rank 1") for m in msgs)
    assert len(bad) == 3  # token_f1 0.61 >= 0.5 and occlusion's rank 1 hold
    v = next(b for b in bad if b.metric == "comprehensiveness")
    assert (v.task, v.explainer, v.kind, v.bound, v.value) == ("check-linear", "noisy_ig", "min", 0.3, mean)
    assert main(["check", str(runs["strong"]), "--contract", str(c)]) == 1
    out = capsys.readouterr().out
    assert f"noisy_ig comprehensiveness = {mean:.4g} < min 0.3" in out and "VIOLATED" in out
    # a per-metric rank bound that fails: noisy_ig's comprehensiveness rank group starts at 2
    c2 = load_contract({"explainers": {"noisy_ig": {"max_rank": {"comprehensiveness": 1}}}})
    (r,) = check_contract(runs["strong"], c2)
    assert r.message.startswith("check-linear: noisy_ig comprehensiveness rank group 2") and "> max_rank 1" in r.message


@pytest.mark.parametrize("text, needle", [
    ("explainers:\n  noisy_ig:\n    min: {comprehensivness: 0.3}\n",
     "field 'explainers.noisy_ig.min.comprehensivness': unknown metric 'comprehensivness' (did you mean "
     "'comprehensiveness'?)"),
    ("explainers:\n  noisy_igg:\n    min: {comprehensiveness: 0.3}\n", "field 'explainers.noisy_igg': unknown explainer"),
    ("explainers:\n  noisy_ig:\n    min: {comprehensiveness: high}\n",
     "field 'explainers.noisy_ig.min.comprehensiveness' must be a finite number; got 'high'"),
    ("explainers:\n  noisy_ig:\n    minimum: {comprehensiveness: 0.3}\n", "field 'explainers.noisy_ig.minimum' is not"),
    ("explainers:\n  noisy_ig:\n    max_rank: 0\n", "field 'explainers.noisy_ig.max_rank' must be a positive integer"),
    ("tasks: [sst2]\nexplainers:\n  noisy_ig:\n    max_rank: 1\n", "field 'tasks': task 'sst2' is not in the run"),
    ("explainer:\n  noisy_ig: {}\n", "field 'explainer' is not a known field"),
    ("explainers: [a\n", "malformed YAML at line"),
])
def test_contract_errors_exit_2(runs, tmp_path, capsys, text, needle):
    c = _contract(tmp_path, text)
    assert main(["check", str(runs["base"]), "--contract", str(c)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"xbench: error: {c}: ") and needle in err and err.count("\n") == 1


def test_contract_skips_inapplicable_metric(runs):
    # a metric the runner marked not applicable to the explainer (as it does, e.g., for seed stability of
    # a deterministic explainer) is skipped; one that is merely absent from the run is a violation
    manifest = json.loads((runs["base"] / "manifest.json").read_text())
    manifest["tasks"]["check-linear"]["explainers"]["occlusion"]["metrics_not_applicable"] = ["auprc"]
    run = runs["base"].parent / "base-na"
    shutil.copytree(runs["base"], run)
    (run / "manifest.json").write_text(json.dumps(manifest))
    bounds = check_contract(run, {"explainers": {"occlusion": {"min": {"auprc": 0.5, "iou_f1": 0.5}}}})
    assert [b.metric for b in bounds] == ["iou_f1"]  # not scored, and not marked inapplicable: a violation
    assert "was not scored in this run" in bounds[0].message


# ----------------------------------------------------------------------------- outputs

def test_json_and_junit_outputs(runs, tmp_path):
    c = _contract(tmp_path, "explainers:\n  noisy_ig:\n    min: {comprehensiveness: 0.3, token_f1: 0.5}\n"
                            "    max_rank: 1\n")
    js, xml = tmp_path / "out" / "check.json", tmp_path / "out" / "junit.xml"
    code = main(["check", "--baseline", str(runs["base"]), str(runs["strong"]), "--contract", str(c),
                 "--json", str(js), "--junit", str(xml)])
    assert code == 1
    data = json.loads(js.read_text())
    assert set(data) == {"xbench_check", "status", "exit_code", "baseline", "run", "alpha", "min_effect",
                         "include_cost", "counts", "cells", "contract", "failures", "notes"}
    assert data["status"] == "fail" and data["exit_code"] == 1 and data["alpha"] == 0.05
    assert data["min_effect"] == {"default": DEFAULT_MIN_EFFECT, "per_metric": {}}
    assert len(data["cells"]) == 8 and all(list(cell) == CELL_FIELDS for cell in data["cells"])
    assert data["counts"]["regressed"] == 3 and sum(data["counts"].values()) == 8
    cell = next(x for x in data["cells"] if x["explainer"] == "noisy_ig" and x["metric"] == "comprehensiveness")
    assert cell["verdict"] == "regressed" and isinstance(cell["p_holm"], float) and cell["fails"] is True
    assert len(data["contract"]["bounds"]) == 3 and len(data["contract"]["violations"]) == 2
    assert set(data["contract"]["violations"][0]) >= {"task", "explainer", "metric", "kind", "bound", "value",
                                                      "message"}
    assert len(data["failures"]) == 3 + 2
    root = ET.parse(xml).getroot()
    assert root.tag == "testsuites"
    cases = root.findall(".//testcase")
    assert len(cases) == 8 + 3 and int(root.get("tests")) == 11
    failures = root.findall(".//testcase/failure")
    assert len(failures) == 5 and int(root.get("failures")) == 5
    names = {(tc.get("classname"), tc.get("name")) for tc in cases if tc.find("failure") is not None}
    assert ("xbench.check-linear.noisy_ig", "comprehensiveness") in names
    assert ("xbench.check-linear.noisy_ig", "comprehensiveness min 0.3") in names
    suites = {s.get("name"): (int(s.get("tests")), int(s.get("failures"))) for s in root.findall("testsuite")}
    assert suites == {"xbench regression": (8, 3), "xbench contract": (3, 2)}
    # a passing check: JSON status pass, JUnit with no failures
    main(["check", "--baseline", str(runs["base"]), str(runs["base"]), "--json", str(js), "--junit", str(xml)])
    assert json.loads(js.read_text())["status"] == "pass"
    assert ET.parse(xml).getroot().get("failures") == "0"


def test_junit_escapes_names(tmp_path):
    hostile = 'x<b>&"\'\x01]]>'
    base = _fake_run(tmp_path / "a", {("t<", hostile, "comprehensiveness"): BASE})
    new = _fake_run(tmp_path / "b", {("t<", hostile, "comprehensiveness"): [b - 0.1 for b in BASE]})
    text = to_junit(check(new, base))
    root = ET.fromstring(text.encode())
    (tc,) = root.findall(".//testcase")
    assert tc.get("classname") == 'xbench.t<.x<b>&"\'\ufffd]]>'
    assert tc.find("failure").get("message").startswith('t<: x<b>&"\'\ufffd]]> comprehensiveness regressed')


def test_counts_say_when_regressions_are_in_ungated_cost_metrics(tmp_path):
    from xbench.gate.check import to_text

    base = _fake_run(tmp_path / "a", {("t", "e", "comprehensiveness"): BASE, ("t", "e", "seconds"): BASE})
    new = _fake_run(tmp_path / "b", {("t", "e", "comprehensiveness"): BASE, ("t", "e", "seconds"): [b + 1 for b in BASE]})
    text = to_text(check(new, base))
    assert "1 regressed (all in cost metrics, not gated)" in text and text.rstrip().endswith("PASS")


def test_ci_fallback_compares_low_with_high_ends(tmp_path):
    """Without scores.csv the gate compares 95% CIs: shifted but overlapping intervals are unchanged,
    disjoint ones a change (a check comparing low with low and high with high would call the shifted
    pair a change)."""
    base = _fake_run(tmp_path / "b", {("t", "e", "comprehensiveness"): BASE})
    lb = json.loads((base / "leaderboard.json").read_text())
    (base / "scores.csv").unlink()

    def with_ci(name, lo, hi, mean):
        d = tmp_path / name
        d.mkdir()
        rows = [{**r, "ci_low": lo, "ci_high": hi, "mean": mean} for r in lb]
        (d / "leaderboard.json").write_text(json.dumps(rows))
        return d

    b = with_ci("base", 0.40, 0.60, 0.50)
    shifted = with_ci("shifted", 0.50, 0.70, 0.60)   # higher on both ends, still overlapping
    above = with_ci("above", 0.61, 0.80, 0.70)        # disjoint, above
    below = with_ci("below", 0.20, 0.399, 0.30)       # disjoint, below
    touching = with_ci("touching", 0.60, 0.80, 0.70)  # shares its low end with the baseline's high end
    assert _cell(compare(b, shifted), "e", "comprehensiveness")["verdict"] == "unchanged"
    assert _cell(compare(b, touching), "e", "comprehensiveness")["verdict"] == "unchanged"
    assert _cell(compare(b, above), "e", "comprehensiveness")["verdict"] == "improved"
    assert _cell(compare(b, below), "e", "comprehensiveness")["verdict"] == "regressed"


def test_contract_bounds_hold_exactly_at_the_bound(tmp_path):
    from xbench.gate.contract import evaluate_contract

    run = _fake_run(tmp_path / "r", {("t", "e", "comprehensiveness"): [0.25, 0.75], ("t", "f", "comprehensiveness"): [0.0, 0.0],
                                     ("t", "random", "comprehensiveness"): [0.0, 0.1]})
    for c, ok in (({"min": {"comprehensiveness": 0.5}}, True), ({"min": {"comprehensiveness": 0.5000001}}, False),
                  ({"max": {"comprehensiveness": 0.5}}, True), ({"max": {"comprehensiveness": 0.4999999}}, False),
                  ({"max_rank": {"comprehensiveness": 1}}, True)):
        (b,) = evaluate_contract(run, {"explainers": {"e": c}})
        assert b.ok is ok, (c, b.value)
