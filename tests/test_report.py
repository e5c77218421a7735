"""Run and round reports: the tables people read, from summary.json and metrics.json."""
from __future__ import annotations

import json

import pandas as pd

from tasks.report import flipped, round_report, write_run_report


def test_run_report_has_rounds_plot_and_cot_vs_tir_per_operation(tmp_path):
    rows = [{"round": k, "greedy": 0.3 + 0.1 * k, "greedy_se": 0.02, "tir_greedy": 0.5, "maj@8": 0.31, "n_test": 500,
             "n_sft": 100 * k, "wall_s": 60.0,
             "by_op": {"mul": {"count": 160, "greedy": 0.1 * k, "tir_greedy": 0.7}}} for k in range(3)]
    (tmp_path / "summary.json").write_text(json.dumps({"run": "t", "rounds": rows}))
    text = write_run_report(tmp_path).read_text()
    assert "| round | greedy | tir_greedy | maj@8 | n_test | n_sft | wall_s |" in text
    assert "| 2 | 0.500 | 0.500 | 0.310 | 500 | 200 | 60.0 |" in text
    assert "## Greedy accuracy per operation, CoT and TIR" in text
    assert "| 2 | mul | 160 | 0.200 | 0.700 |" in text
    assert (tmp_path / "accuracy.png").stat().st_size > 1000


def test_round_report_change_and_flips(tmp_path):
    def preds(correct):
        return pd.DataFrame({"problem_id": ["a", "b", "a"], "mode": ["cot", "cot", "tir"], "kind": ["greedy"] * 3,
                             "response": ["r"] * 3, "answer": ["1", "2", "3"], "correct": correct})
    preds([False, True, True]).to_parquet(tmp_path / "before.parquet")
    preds([True, False, False]).to_parquet(tmp_path / "after.parquet")
    fixed, broken = flipped(tmp_path / "before.parquet", tmp_path / "after.parquet")
    assert [x["problem_id"] for x in fixed] == ["a"] and [x["problem_id"] for x in broken] == ["b"]  # CoT only
    text = round_report({"greedy": 0.5, "greedy_se": 0.1, "tir_greedy": 0.25}, {"greedy": 0.4, "tir_greedy": 0.5},
                        fixed, broken, "Round 1")
    assert "| greedy | 0.500 | 0.100 | 0.400 | 0.100 |" in text
    assert "| tir_greedy | 0.250 | - | 0.500 | -0.250 |" in text
    assert "1 now right, 1 now wrong" in text


def test_round_report_lists_every_disagreement_with_math_verify():
    rows = [{"problem_id": f"math500/{i}", "mode": "cot", "kind": "greedy", "sample_idx": 0, "gold": "|x|",
             "answer": "4", "ours": True, "math_verify": False, "tail": "... > 4$ | `x`\n more"} for i in range(25)]
    text = round_report({"greedy": 0.5, "mv_agreement": 0.9}, None, [], [], "Eval", rows)
    assert "## Verdicts that differ from plain math-verify: 25 (agreement 0.9)" in text
    assert all(f"| math500/{i} | cot |" in text for i in range(25))  # every one, not the first 20
    assert r"| \|x\| | 4 | True | False | `... > 4$ \| 'x' more` |" in text
    none = round_report({"greedy": 0.5, "mv_agreement": 1.0}, None, [], [], "Eval", [])
    assert "differ from plain math-verify: 0 (agreement 1.0)" in none
