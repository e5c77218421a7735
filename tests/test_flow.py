"""The whole loop on the smoke config, through the real CLI, vLLM, TRL and Prefect.

One module-scoped run is killed with SIGKILL in the middle of round 2, resumed, continued with
GRPO (`--grpo`), then re-run with one stage's config changed. Together they check: resume
recomputes nothing that had finished (Prefect reports those stages Cached and their folders are
untouched), the summary is complete, GRPO runs after cached rounds, and a config change
invalidates that stage and what depends on it, nothing upstream.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "configs" / "smoke.yaml"
CLI = [sys.executable, "-m", "flows.cli"]


def _cli(args, log: Path, **popen):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([*CLI, *args], cwd=REPO, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=env, start_new_session=True, **popen)


def _stage_states(log: Path) -> dict[str, str]:
    """{'round-01/sample': 'Cached', ...} from Prefect's 'Finished in state' log lines."""
    states, current = {}, "round-00"
    for line in log.read_text().splitlines():
        if m := re.search(r"Flow run '(round-\d\d|rl)'", line):
            current = m.group(1)
        if m := re.search(r"Task run '([a-z-]+)-[0-9a-f]{3}' - Finished in state (\w+)", line):
            states[f"{current}/{m.group(1)}"] = m.group(2)
    return states


def _snapshot(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.glob("round-*/*/manifest.json")}


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    home = tmp_path_factory.mktemp("runs")
    run_dir = home / "smoke"
    first = _cli(["run", str(SMOKE), "--home", str(home)], home / "first.log")
    deadline = time.time() + 600
    target = run_dir / "round-02" / "02-sample" / "manifest.json"
    while not target.exists():
        assert first.poll() is None, (home / "first.log").read_text()[-3000:]
        assert time.time() < deadline, "round 2 never started sampling"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _snapshot(run_dir)
    resumed = _cli(["run", str(SMOKE), "--home", str(home), "--resume"], home / "resume.log")
    assert resumed.wait(timeout=900) == 0, (home / "resume.log").read_text()[-3000:]
    return home, run_dir, before


def test_resume_after_sigkill_recomputes_nothing_finished(killed_then_resumed):
    home, run_dir, before = killed_then_resumed
    after = _snapshot(run_dir)
    assert before, "the first run finished some stages before it was killed"
    for manifest, mtime in before.items():
        assert after[manifest] == mtime, f"{manifest} was recomputed"
    states = _stage_states(home / "resume.log")
    # The kill may land between a stage's manifest and Prefect's result record: that stage is
    # then re-entered but not recomputed (its files are untouched, checked above), so Prefect
    # says Completed for it. Every stage finished before it must come from Prefect's cache.
    last = max(before, key=before.get)
    for stage_dir in before:
        rnd, folder = stage_dir.split("/")[:2]
        stage = folder.split("-", 1)[1]
        allowed = {"Cached", "Completed"} if stage_dir == last else {"Cached"}
        assert states[f"{rnd}/{stage}"] in allowed, (stage_dir, states)
    assert states["round-02/sft"] == "Completed"  # unfinished work was done on resume
    assert not list(run_dir.glob("round-*/*.tmp-*")), "no half-written stage left behind"


def test_resumed_summary_is_complete(killed_then_resumed):
    _, run_dir, _ = killed_then_resumed
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run"] == "smoke"
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    for r in summary["rounds"]:
        assert 0.0 <= r["greedy"] <= 1.0 and r["n_test"] == 32
        assert {"maj@2", "pass@2", "n_sft", "wall_s", "tir_greedy", "tir_maj@2", "tir_pass@2"} <= set(r)
        assert 0.0 <= r["tir_greedy"] <= 1.0
    samples = pd.read_parquet(run_dir / "round-01" / "02-sample" / "samples.parquet")
    assert set(samples["mode"]) == {"cot", "tir"}   # sample.tir_fraction: some problems asked in TIR mode
    problems = pd.read_parquet(run_dir / "round-01" / "01-problems" / "problems.parquet")
    assert problems.parent_id.notna().sum() == 8   # problems.evolve.fraction 0.25 of 32
    preds = pd.read_parquet(run_dir / "round-01" / "09-evaluate" / "predictions.parquet")
    assert preds.groupby("mode").size().to_dict() == {"cot": 32 * 3, "tir": 32 * 3}   # greedy + 2 samples each
    assert preds[preds["mode"] == "tir"].prompt.str.endswith(" Use Python.\n").all()


def test_grpo_after_the_rounds_takes_every_round_from_cache(killed_then_resumed):
    home, run_dir, _ = killed_then_resumed
    proc = _cli(["run", str(SMOKE), "--home", str(home), "--resume", "--grpo"], home / "grpo.log")
    assert proc.wait(timeout=900) == 0, (home / "grpo.log").read_text()[-3000:]
    states = _stage_states(home / "grpo.log")
    assert {s for k, s in states.items() if not k.startswith("rl/")} == {"Cached"}, states
    assert states["rl/grpo"] == "Completed" and states["rl/evaluate"] == "Completed"
    assert (run_dir / "rl" / "02-grpo" / "model" / "config.json").exists()
    rows = json.loads((run_dir / "summary.json").read_text())["rounds"]
    assert [(r["round"], r.get("phase")) for r in rows] == [(0, None), (1, None), (2, None), (3, "grpo")]
    assert 0.0 <= rows[-1]["greedy"] <= 1.0 and rows[-1]["wall_s"] > 0


def test_config_change_invalidates_stage_and_downstream_only(killed_then_resumed, tmp_path):
    home, run_dir, _ = killed_then_resumed
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["select"] = {"max_per_problem": 1}
    changed = tmp_path / "smoke-select.yaml"
    changed.write_text("# selfimprove run (test copy)\n" + yaml.safe_dump(cfg))
    proc = _cli(["run", str(changed), "--home", str(home), "--resume"], home / "changed.log")
    assert proc.wait(timeout=900) == 0, (home / "changed.log").read_text()[-3000:]
    states = _stage_states(home / "changed.log")
    for stage in ("round-00/bootstrap", "round-00/evaluate", "round-01/problems", "round-01/sample",
                  "round-01/verify", "round-02/problems"):
        assert states[stage] == "Cached", (stage, states)
    for stage in ("round-01/select", "round-01/sft", "round-01/evaluate", "round-02/sample",
                  "round-02/select", "round-02/sft"):
        assert states[stage] == "Completed", (stage, states)


def test_new_run_into_existing_folder_is_refused(killed_then_resumed):
    home, _, _ = killed_then_resumed
    out = subprocess.run([*CLI, "run", str(SMOKE), "--home", str(home)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "--resume" in out.stderr



def _data_files(run_dir: Path) -> dict[str, str]:
    """Digest of every file a stage wrote, by its path in the run (records of when and how long left out)."""
    from tasks.common import sha256_file
    skip = {"manifest.json", "shards.json"}
    return {str(p.relative_to(run_dir)): sha256_file(p) for p in sorted(run_dir.glob("round-*/*/**/*"))
            if p.is_file() and p.name not in skip and ".jobs" not in p.parts}


def test_resumed_run_equals_an_uninterrupted_run_file_by_file(killed_then_resumed, tmp_path):
    """Sampling depends only on (weights, prompt, per-problem seed), never on what the engine served
    before, and training writes no temporary paths: the killed and resumed run is the same run."""
    _, run_dir, _ = killed_then_resumed
    home = tmp_path / "straight"
    proc = _cli(["run", str(SMOKE), "--home", str(home)], tmp_path / "straight.log")
    assert proc.wait(timeout=900) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    resumed, straight = _data_files(run_dir), _data_files(home / "smoke")
    assert set(resumed) == set(straight)
    differ = sorted(f for f in resumed if resumed[f] != straight[f])
    assert differ == [], differ


def test_copied_run_resumes_on_its_own_files_and_a_damaged_file_is_recomputed(killed_then_resumed, tmp_path):
    import shutil

    home, run_dir, _ = killed_then_resumed
    original = _data_files(run_dir)
    copy_home = tmp_path / "copy"
    shutil.copytree(run_dir, copy_home / "smoke", symlinks=True)          # like cp -a: mtimes kept
    samples = copy_home / "smoke" / "round-01" / "02-sample" / "samples.parquet"
    samples.write_bytes(samples.read_bytes()[:100])                        # truncated in the copy only
    proc = _cli(["run", str(SMOKE), "--home", str(copy_home), "--resume"], tmp_path / "copy.log")
    assert proc.wait(timeout=900) == 0, (tmp_path / "copy.log").read_text()[-3000:]
    log = (tmp_path / "copy.log").read_text()
    assert "02-sample: damaged (samples.parquet: size" in log
    states = _stage_states(tmp_path / "copy.log")
    assert states["round-01/sample"] == "Completed" and states["round-01/problems"] == "Cached"
    assert _data_files(copy_home / "smoke") == original                    # recomputed to the same bytes
    assert _data_files(run_dir) == original                                # the original was never touched

    moved = tmp_path / "moved"
    shutil.move(str(copy_home / "smoke"), str(moved / "smoke"))
    proc = _cli(["run", str(SMOKE), "--home", str(moved), "--resume"], tmp_path / "moved.log")
    assert proc.wait(timeout=900) == 0, (tmp_path / "moved.log").read_text()[-3000:]
    assert set(_stage_states(tmp_path / "moved.log").values()) == {"Cached"}
