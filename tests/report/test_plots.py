"""Plots: PNG + SVG written, labels as SVG text, data text never mathtext, CD groups, a run's plots."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xbench.results.leaderboard import summarize, task_summary
from xbench.report.plots import (agreement_heatmap, cd_diagram, cd_groups, cost_quality, curve_band, curve_plot, read_curves, token_heatmap, write_plots)
from xbench.results.stats import FriedmanResult, metric_agreement

ROOT = Path(__file__).resolve().parents[2]
EXPL = ("random", "alpha_expl", "beta_expl", "gamma_expl")


def scores_frame():
    # per explainer: (comprehensiveness, sufficiency, token_f1, seconds) around these means
    means = {"random": (0.1, 0.6, 0.2, 0.0001), "alpha_expl": (0.8, 0.1, 0.7, 0.01),
             "beta_expl": (0.6, 0.2, 0.3, 0.001), "gamma_expl": (0.5, 0.3, 0.5, 0.1)}
    rows = []
    for e, ms in means.items():
        for m, mu in zip(("comprehensiveness", "sufficiency", "token_f1", "seconds"), ms):
            for i, d in enumerate((-0.01, 0.0, 0.01)):
                rows.append(("t", e, m, f"e{i}", mu + d * (mu if m == "seconds" else 1), ""))
    return pd.DataFrame(rows, columns=["task", "explainer", "metric", "example", "value", "error"])


@pytest.fixture(scope="module")
def lb():
    return summarize(scores_frame(), n_resamples=50)


def check(paths, *texts):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG")
    svg = paths[1].read_text()
    for t in texts:
        assert t in svg, t
    return svg


def test_cost_quality(lb, tmp_path):
    summary, _ = task_summary(lb)
    front = set(summary.loc[summary["dominated"] == False, "explainer"])  # noqa: E712
    assert front == {"random", "alpha_expl", "beta_expl"}  # gamma: slower and less faithful than alpha
    check(cost_quality(summary, "t", tmp_path), *EXPL, "Pareto front")


def test_agreement_heatmap(lb, tmp_path):
    q = lb[lb["family"] != "cost"]
    pairs = metric_agreement(q[["task", "explainer", "metric", "mean"]]).pairs
    svg = check(agreement_heatmap(pairs, "t", tmp_path), "comprehensiveness", "sufficiency", "token_f1")
    tau = pairs.set_index(["metric_a", "metric_b"])["tau"]
    assert f"{tau[('comprehensiveness', 'sufficiency')]:.2f}" in svg  # the cell is annotated


def test_cd_groups_and_diagram(tmp_path):
    ranks = pd.Series({"a": 1.0, "b": 1.5, "c": 2.2, "d": 3.9, "e": 4.0})
    # cd 1.3: a-b-c spread 1.2 < 1.3 joined; b-c (contained) not; c-d 1.7 no; d-e joined
    assert cd_groups(ranks, 1.3) == [["a", "b", "c"], ["d", "e"]]
    assert cd_groups(ranks, 0.6) == [["a", "b"], ["d", "e"]]
    assert cd_groups(ranks, 0.05) == [] and cd_groups(ranks, np.nan) == []
    res = FriedmanResult(9.0, 0.01, 5, 6, ranks, 2.7, 1.3, "")
    paths, groups = cd_diagram(res, tmp_path, "cd_test")
    assert groups == [["a", "b", "c"], ["d", "e"]]
    check(paths, "CD = 1.30", "a (1.00)", "e (4.00)")


def test_token_heatmap_plain_text(tmp_path):
    tokens = ["the", "<script>$x$</script>", "film", "was", "great", "100$", "&"]
    scores = [0.0, -0.5, 0.1, 0.0, 0.9, np.nan, 0.2]
    gold = [0, 0, 0, 0, 1, 0, 0]
    svg = check(token_heatmap(tokens, scores, gold, tmp_path, "ex1"), "great", "film", "100$")
    assert "&lt;script&gt;$x$&lt;/script&gt;" in svg  # literal, escaped, no mathtext
    assert "<script>" not in svg


def test_curve_band_and_plot(tmp_path):
    v = np.array([[1.0, 0.5, 0.0], [1.0, 0.7, 0.2], [np.nan, 0.1, 0.1], [1.0, 0.6, 0.4]])
    mean, lo, hi = curve_band(v, "t", "deletion_auc", "a")
    np.testing.assert_allclose(mean, [1.0, 0.6, 0.2])  # the row with a NaN is left out
    assert lo[0] == hi[0] == 1.0  # every example equal: a degenerate band at the value
    assert lo[1] < 0.6 < hi[1] and 0.5 <= lo[1] and hi[1] <= 0.7  # inside the range of the means
    again = curve_band(v, "t", "deletion_auc", "a")
    assert all(np.array_equal(x, y) for x, y in zip((mean, lo, hi), again))  # seeded
    paths = curve_plot({"alpha_expl": v, "random": v[::-1]}, "deletion_auc", "t", tmp_path,
                       {"alpha_expl": 0.123, "random": 0.456})
    check(paths, "alpha_expl (0.123)", "random (0.456)", "fraction of features removed")
    paths = curve_plot({"alpha_expl": v}, "insertion_auc", "t", tmp_path)
    check(paths, "fraction of features kept")
    # read_curves: metric -> explainer -> array, from the runner's npz files
    d = tmp_path / "run" / "curves" / "t"
    d.mkdir(parents=True)
    np.savez(d / "alpha_expl.npz", ids=np.array(["a", "b", "c", "d"]), deletion_auc=v)
    got = read_curves(tmp_path / "run", "t")
    assert list(got) == ["deletion_auc"] and np.array_equal(got["deletion_auc"]["alpha_expl"], v, equal_nan=True)


def test_write_plots_on_committed_run(tmp_path):
    src = ROOT / "leaderboards" / "default"
    if not (src / "leaderboard.json").exists():
        pytest.skip("leaderboards/default/leaderboard.json is absent")
    for f in ("leaderboard.json", "manifest.json", "curves", "examples", "explanations"):
        if (src / f).is_dir():
            shutil.copytree(src / f, tmp_path / f)
        elif (src / f).exists():
            shutil.copy(src / f, tmp_path / f)
    files = write_plots(tmp_path)
    tasks = list(dict.fromkeys(pd.read_json(tmp_path / "leaderboard.json")["task"]))
    names = {p.name for p in files}
    expected = {f"{kind}_{t}.{ext}" for t in tasks for kind in ("cost_quality", "agreement") for ext in ("png", "svg")}
    assert expected <= names
    if len(tasks) >= 2:
        assert {"cd_overall.png", "cd_overall.svg"} <= names
    assert {f"curve_{t}_{m}.png" for t in tasks for m in ("deletion_auc", "insertion_auc")} <= names
    if (src / "explanations").exists():  # not committed (.gitignore): present after a local publish
        assert any(n.startswith("tokens_synthetic-reviews_") for n in names)
    else:
        assert not any(n.startswith("tokens_") for n in names)
    for p in files:
        assert p.parent == tmp_path / "plots" and p.stat().st_size > 0
    assert not [p for p in (tmp_path / "plots").iterdir() if p.name.endswith(".tmp")]


def test_cli_leaderboard_writes_plots_and_latex(tmp_path, capsys):
    import shutil

    from xbench.cli import main

    src = Path(__file__).resolve().parents[2] / "leaderboards" / "default"
    for f in ("leaderboard.json", "manifest.json"):
        shutil.copy(src / f, tmp_path / f)
    assert main(["leaderboard", str(tmp_path), "--format", "latex", "--plots"]) == 0
    out = capsys.readouterr()
    assert "\\toprule" in out.out and "plot files" in out.err
    assert "% across tasks: Friedman chi2 = " in out.out  # the committed run has three tasks
    assert (tmp_path / "plots" / "cd_overall.svg").exists()


@pytest.mark.parametrize("explainers", [("a", "b"), ("a",)])
def test_report_and_plots_work_on_a_run_whose_seconds_are_all_zero(tmp_path, capsys, explainers):
    """A user's own run can record 0 s (precomputed attributions, a coarse clock): the cost-quality
    plot once crashed on its log axis. A run of one explainer has no pairs to test or rank."""
    import json

    from xbench.cli import main
    from xbench.report.tables import write_leaderboard

    rows = [("t", e, m, f"x{i}", v, "") for e in explainers for m, v in (("comprehensiveness", 0.5), ("seconds", 0.0))
            for i in range(5)]
    scores = pd.DataFrame([(*r, "mask", 1, 0) for r in rows],
                          columns=["task", "explainer", "metric", "example", "value", "error", "replacement", "target",
                                   "seed"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"config": {"suite": "x"}, "tasks": {}}))
    scores.to_csv(run / "scores.csv", index=False)
    write_leaderboard(run, scores)
    assert main(["leaderboard", str(run), "--plots"]) == 0
    assert main(["report", str(run)]) == 0 and (run / "report.html").exists()
