"""Leaderboard aggregation: means, bootstrap CIs, ranks by direction, n_failed, formats."""
import json

import numpy as np
import pandas as pd
import pytest

from xbench.cli import main
from xbench.results.leaderboard import ROW_FIELDS, bootstrap_ci, summarize
from xbench.report.tables import to_markdown, write_leaderboard


def scores_frame():
    rows = []
    for expl, comp, suff in (("a", [0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.1, 0.2]),
                             ("b", [0.1, 0.2, 0.3, np.nan], [0.5, 0.6, 0.5, 0.6])):
        for i, (c, s) in enumerate(zip(comp, suff)):
            rows.append(("t", expl, "comprehensiveness", f"e{i}", c, "" if np.isfinite(c) else "NaN or infinite attributions"))
            rows.append(("t", expl, "sufficiency", f"e{i}", s, ""))
    return pd.DataFrame(rows, columns=["task", "explainer", "metric", "example", "value", "error"])


def test_summary_rows_and_ranks():
    lb = summarize(scores_frame())
    assert list(lb.columns) == ROW_FIELDS
    a = lb[(lb.explainer == "a") & (lb.metric == "comprehensiveness")].iloc[0]
    b = lb[(lb.explainer == "b") & (lb.metric == "comprehensiveness")].iloc[0]
    assert a["mean"] == pytest.approx(0.75) and a["median"] == pytest.approx(0.75)
    assert b["mean"] == pytest.approx(0.2) and b["n"] == 3 and b["n_failed"] == 1
    assert a["rank"] == 1 and b["rank"] == 2  # higher is better
    sa = lb[(lb.explainer == "a") & (lb.metric == "sufficiency")].iloc[0]
    assert sa["rank"] == 1 and sa["direction"] == "lower"  # lower is better
    assert a["ci_low"] <= a["mean"] <= a["ci_high"]


def test_bootstrap_ci_is_seeded_and_sane():
    x = np.random.default_rng(0).normal(1.0, 1.0, 400)
    lo, hi = bootstrap_ci(x, "k")
    assert (lo, hi) == bootstrap_ci(x, "k")
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert lo == pytest.approx(x.mean() - half, abs=0.03) and hi == pytest.approx(x.mean() + half, abs=0.03)
    assert bootstrap_ci(np.array([0.5, 0.5]), "k") == (0.5, 0.5)
    assert all(np.isnan(bootstrap_ci(np.array([]), "k")))


def test_markdown_and_cli_formats(tmp_path, capsys):
    manifest = {"tasks": {"t": {"n_examples": 4, "replacement": "mask", "target": "predicted",
                                "granularity": "tokens", "model": {"test_accuracy": 0.99}}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    write_leaderboard(tmp_path, scores_frame(), manifest)
    md = (tmp_path / "leaderboard.md").read_text()
    assert "comprehensiveness ↑" in md and "sufficiency ↓" in md and "(1 failed)" in md
    assert "| a " in md.split("| b ")[0]  # a is ranked first, so listed first
    for fmt, check in (("json", lambda s: json.loads(s)[0]["task"] == "t"),
                       ("csv", lambda s: s.startswith("task,explainer,metric")),
                       ("md", lambda s: s == md)):
        assert main(["leaderboard", str(tmp_path), "--format", fmt]) == 0
        assert check(capsys.readouterr().out)
    assert main(["leaderboard", str(tmp_path / "nope")]) == 2
    assert to_markdown(summarize(scores_frame())).startswith("# xbench leaderboard")


def test_summary_has_rank_groups_and_anchored_scores():
    """A is clearly best; B and C differ by noise only, so they share ranks 2–3; anchored scores put
    random at 0 and the ideal (comprehensiveness 1) at 1."""
    rng = np.random.default_rng(0)
    n = 40
    vals = {"A": 0.9 + 0.01 * rng.standard_normal(n), "B": 0.5 + 0.05 * rng.standard_normal(n),
            "C": 0.5 + 0.05 * rng.standard_normal(n), "random": np.full(n, 0.1)}
    rows = [("t", e, "comprehensiveness", str(i), float(v[i]), "") for e, v in vals.items() for i in range(n)]
    scores = pd.DataFrame(rows, columns=["task", "explainer", "metric", "example", "value", "error"])
    lb = summarize(scores, n_resamples=200).set_index("explainer")
    assert lb.loc["A", "rank_group"] == "1"
    assert lb.loc["B", "rank_group"] == lb.loc["C", "rank_group"] == "2–3"
    assert lb.loc["random", "rank_group"] == "4"
    assert lb.loc["random", "anchored"] == 0.0
    assert lb.loc["A", "anchored"] == pytest.approx((vals["A"].mean() - 0.1) / 0.9)
    assert lb.loc["B", "p_vs_best"] < 0.05
    assert "#2–3" in to_markdown(lb.reset_index())


def test_task_summary_pareto_and_family_disagreement():
    """Three explainers: F is faithful and slow, P plausible and fast, random neither. Faithfulness and
    plausibility order them mostly oppositely (mean Kendall τ = −1/3), and nobody dominates F or P on
    (faithfulness, cost); Q is less faithful and slower than F."""
    import pandas as pd

    from xbench.results.leaderboard import summarize, task_summary
    from xbench.report.tables import to_latex

    means = {"comprehensiveness": {"F": 0.9, "P": 0.3, "Q": 0.5, "random": 0.1},
             "token_f1": {"F": 0.2, "P": 0.9, "Q": 0.6, "random": 0.5},
             "seconds": {"F": 2.0, "P": 0.1, "Q": 3.0, "random": 0.001}}
    rows = [("t", e, m, str(i), v + 0.001 * i, "") for m, d in means.items() for e, v in d.items() for i in range(8)]
    lb = summarize(pd.DataFrame(rows, columns=["task", "explainer", "metric", "example", "value", "error"]),
                   n_resamples=100)
    summary, flags = task_summary(lb)
    s = summary.set_index("explainer")
    assert not s.loc["F", "dominated"] and not s.loc["P", "dominated"] and not s.loc["random", "dominated"]
    assert s.loc["Q", "dominated"]  # F is more faithful and cheaper
    assert s.loc["random", "faithfulness_anchored"] == 0.0
    assert any("faithfulness and plausibility disagree on t" in f for f in flags)
    assert "\\toprule" in to_latex(lb)


def test_metric_skipped_for_every_example_counts_in_no_rank():
    """pointing_game skips every example for every explainer (no gold pixels): it ranks no one, so the
    summary has no localisation rank, the overall rank is the faithfulness one alone and "rank 1 in"
    counts one metric; the table cells say it was not scored. A metric that only one explainer fails
    on still ranks it last."""
    from xbench.results.leaderboard import NOT_SCORED, task_summary, unscored

    rows = []
    for e, c in (("a", 0.9), ("b", 0.1)):
        for i in range(12):
            rows.append(("t", e, "comprehensiveness", f"e{i}", c + 0.01 * i, ""))
            rows.append(("t", e, "pointing_game", f"e{i}", np.nan, "skipped: no gold pixels"))
            rows.append(("t", e, "token_f1", f"e{i}", 0.5 if e == "a" else np.nan,
                         "" if e == "a" else "NaN or infinite attributions"))
    scores = pd.DataFrame(rows, columns=["task", "explainer", "metric", "example", "value", "error"])
    lb = summarize(scores, n_resamples=100)
    assert unscored(lb).tolist() == (lb["metric"] == "pointing_game").tolist()
    s = task_summary(lb)[0].set_index("explainer")
    assert "rank_localisation" not in s.columns
    assert s.loc["a", "rank_overall"] == 1 and s.loc["b", "rank_overall"] == 2  # (2 + 2) / 2: not pulled to 1
    assert s.loc["a", "rank_1"] == "2/2" and s.loc["b", "rank_1"] == "0/2"
    md = to_markdown(lb)
    assert "rank: localisation" not in md and md.count(NOT_SCORED) == 2
    assert "(12 failed)" in md  # token_f1 for b: failures still show, and still rank b last
