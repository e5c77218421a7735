"""Run and round reports: the tables people read, from summary.json and metrics.json."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from tasks.report import by_mode, flipped, round_report, write_run_report


def _rows():
    return [{"round": k, "greedy": 0.3 + 0.1 * k, "greedy_se": 0.02, "maj@8": 0.31, "pass@8": 0.9,
             "tir_greedy": 0.5, "tir_maj@8": 0.55, "tir_pass@8": 0.95, "mv_agreement": 1.0, "n_test": 500,
             "n_sft": 100 * k, "wall_s": 60.0, **({"rm@8": 0.4, "tir_rm@8": 0.6, "rm_pair_acc": 0.7} if k else {}),
             "by_op": {"mul": {"count": 160, "greedy": 0.1 * k, "tir_greedy": 0.7}}} for k in range(3)]


def test_run_report_has_cot_and_tir_per_round_a_plot_and_per_operation(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"run": "t", "rounds": _rows()}))
    text = write_run_report(tmp_path).read_text()
    assert "| round | mode | greedy | maj@8 | rm@8 | pass@8 |" in text
    assert "| 0 | cot | 0.300 | 0.310 | - | 0.900 |" in text
    assert "| 2 | cot | 0.500 | 0.310 | 0.400 | 0.900 |" in text
    assert "| 2 | tir | 0.500 | 0.550 | 0.600 | 0.950 |" in text
    assert "| round | rm_pair_acc | mv_agreement | n_test | n_sft | wall_s |" in text
    assert "| 2 | 0.700 | 1.000 | 500 | 200 | 60.0 |" in text
    assert "## Greedy accuracy per operation, CoT and TIR" in text
    assert "| 2 | mul | 160 | 0.200 | 0.700 |" in text
    assert (tmp_path / "accuracy.png").stat().st_size > 1000


def test_by_mode_reads_any_n_and_skips_a_mode_that_was_not_evaluated():
    rows = [{"round": 0, "greedy": 0.5, "maj@32": 0.6, "rm_maj@32": 0.65, "wall_s": 9.0}]
    table, columns = by_mode(rows)
    assert columns == ["greedy", "maj@32", "rm_maj@32"]
    assert table == [{"round": 0, "mode": "cot", "greedy": 0.5, "maj@32": 0.6, "rm_maj@32": 0.65}]
    table, _ = by_mode([{"round": 4, "phase": "grpo", "greedy": 0.7}])
    assert table == [{"round": 4, "phase": "grpo", "mode": "cot", "greedy": 0.7}]


def test_each_round_publishes_the_report_table_and_artifacts_named_for_the_ui(prefect_api, tmp_path):
    from prefect import flow
    from prefect.client.orchestration import get_client

    from flows.self_improve import _publish
    from tasks.common import StageResult

    evaluation = StageResult("evaluate", str(tmp_path / "round-02" / "09-evaluate"), "key", "digest")
    Path(evaluation.dir).mkdir(parents=True)
    evaluation.path("report.md").write_text("# Round 2\n")

    @flow
    def publish_round_two():
        _publish({"run": "My_Run 7", "rounds": _rows()}, 1, 2, evaluation)

    publish_round_two()
    with get_client(sync_client=True) as client:
        arts = {a.key: a for a in client.read_artifacts() if a.key and a.key.startswith("my-run-7")}
    assert set(arts) == {"my-run-7-summary", "my-run-7-round-02", "my-run-7-round-02-checkpoint"}
    assert all(re.fullmatch(r"[a-z0-9-]+", k) for k in arts)
    table = arts["my-run-7-summary"].data
    table = json.loads(table) if isinstance(table, str) else table
    assert {(r["round"], r["mode"]) for r in table} == {(k, m) for k in range(3) for m in ("cot", "tir")}
    assert next(r for r in table if (r["round"], r["mode"]) == (2, "tir"))["rm@8"] == 0.6
    assert arts["my-run-7-round-02"].data == "# Round 2\n"
    assert "/round-02/06-sft/model)" in arts["my-run-7-round-02-checkpoint"].data  # a markdown link


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


def test_summary_command_prints_a_row_per_round_and_mode(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "summary.json").write_text(json.dumps({"run": "t", "rounds": _rows()}))
    result = CliRunner().invoke(app, ["summary", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.replace("│", " ").split()) for line in result.output.splitlines()]
    assert "2 cot 0.500 0.310 0.400 0.900 0.700 200 60" in lines  # round, mode, greedy, maj, rm, pass, pair acc, n_sft, wall
    assert "2 tir 0.500 0.550 0.600 0.950 - - -" in lines
