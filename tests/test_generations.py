"""Generation 2 (synthesize -> pretrain -> rounds again), ablations, and the paired comparisons
that judge both: exact numbers on tiny frames, then a smoke run of each through the real CLI."""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.compare import compare, paired_bootstrap, pooled

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "configs" / "smoke.yaml"
CLI = [sys.executable, "-m", "flows.cli"]


# ---------------------------------------------------------------------------------------------
# Paired bootstrap

def test_paired_bootstrap_of_identical_verdicts_is_exactly_zero():
    a = np.array([1, 0, 1, 1, 0])
    c = paired_bootstrap(a, a)
    assert (c["diff"], c["lo"], c["hi"], c["problems"]) == (0.0, 0.0, 0.0, 5)


def test_paired_bootstrap_when_b_fixes_every_item_a_missed():
    a = np.array([0, 0, 1, 1])
    b = np.array([1, 1, 1, 1])
    c = paired_bootstrap(a, b, n_boot=500)
    # per-item differences are 1, 1, 0, 0: the mean is 0.5 and no resample can go below 0 or above 1
    assert (c["a"], c["b"], c["diff"]) == (0.5, 1.0, 0.5)
    assert 0.0 <= c["lo"] <= 0.5 <= c["hi"] <= 1.0 and c["lo"] < c["hi"]


def test_paired_interval_is_tighter_than_an_unpaired_one():
    """Two evaluations that differ on 20 of 400 problems, all in b's favour: the pairing removes
    the shared problem difficulty, so the interval excludes 0 although each accuracy's own
    standard error (~0.025) is larger than half the gap."""
    rng = np.random.default_rng(1)
    a = (rng.random(400) < 0.6).astype(float)
    b = a.copy()
    b[np.flatnonzero(a == 0)[:20]] = 1.0
    c = paired_bootstrap(a, b)
    assert c["diff"] == 0.05 and c["lo"] > 0.0


def test_paired_bootstrap_refuses_unpaired_input():
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="no paired items"):
        paired_bootstrap([], [])


def _evaluation(folder: Path, greedy: list[int], maj: list[int] | None = None, ids=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ids = ids or [f"t{i}" for i in range(len(greedy))]
    df = pd.DataFrame({"id": ids, "greedy": [bool(x) for x in greedy], "mode": "cot"})
    if maj is not None:
        df["maj"] = [bool(x) for x in maj]
    df.to_parquet(folder / "per_problem.parquet", index=False)
    return folder


def test_seeds_are_pooled_per_problem_before_pairing(tmp_path):
    a0 = _evaluation(tmp_path / "a0", [1, 0, 0, 1])
    a1 = _evaluation(tmp_path / "a1", [1, 1, 0, 1])
    b0 = _evaluation(tmp_path / "b0", [1, 1, 1, 1])
    b1 = _evaluation(tmp_path / "b1", [1, 1, 0, 1])
    assert pooled([a0, a1], "greedy").tolist() == [1.0, 0.5, 0.0, 1.0]
    c = compare([a0, a1], [b0, b1], metric="greedy")
    # pooled a = (1, .5, 0, 1), pooled b = (1, 1, .5, 1): mean difference (0 + .5 + .5 + 0) / 4
    assert (c["a"], c["b"], c["diff"], c["seeds"]) == (0.625, 0.875, 0.25, [2, 2])


def test_two_metrics_of_one_evaluation_and_only_shared_problems(tmp_path):
    e = _evaluation(tmp_path / "e", greedy=[1, 0, 0], maj=[1, 1, 0])
    c = compare([e], [e], metric="greedy", metric_b="maj")
    assert (c["diff"], c["metric"]) == (round(1 / 3, 4), "maj - greedy")
    f = _evaluation(tmp_path / "f", greedy=[0, 1], ids=["t1", "t9"])
    assert compare([e], [f])["problems"] == 1          # only t1 was evaluated by both
    with pytest.raises(KeyError, match="rm"):
        compare([e], [e], metric="rm")


# ---------------------------------------------------------------------------------------------
# Synthesized text and corpus v2

def test_synthesized_rows_are_verified_untruncated_one_per_problem():
    from tasks.synthesize import corpus_rows

    problems = pd.DataFrame({"id": ["p1", "p2", "p3", "p4"], "question": ["q1", "q2", "q3", "q4"],
                             "gold": ["1", "2", "3", "4"], "lang": "en", "source": "world"})
    samples = pd.DataFrame({
        "problem_id": ["p1", "p1", "p2", "p2", "p3", "p4", "p4"],
        "response": ["a", "b", "wrong", "c", "cut off", "d", "d"],
        "mode": ["cot", "cot", "cot", "tir", "cot", "cot", "cot"],
        "finish_reason": ["stop", "stop", "stop", "stop", "length", "stop", "stop"],
        "correct": pd.array([True, True, False, True, True, True, True], dtype="boolean")})
    rows = corpus_rows(samples, problems, seed=0)
    assert list(rows.id) == ["p1", "p2", "p4"]          # p3's only correct answer was truncated
    assert rows.set_index("id").solution["p2"] == "c" and rows.set_index("id")["mode"]["p2"] == "tir"
    assert rows.set_index("id").solution["p1"] in {"a", "b"}
    assert set(rows.source) == {"synthesized"} and list(rows.gold) == ["1", "2", "4"]


def test_corpus_v2_is_the_whole_corpus_plus_synthesized_rows_at_the_ratio():
    from tasks.pretrain import corpus_v2

    corpus = pd.DataFrame({"id": [f"b{i}" for i in range(10)], "question": "q", "solution": "s", "gold": "1",
                           "sloppy": False})
    synth = pd.DataFrame({"id": [f"s{i}" for i in range(8)], "question": "q", "solution": "t", "gold": "1",
                          "mode": "tir", "source": "synthesized"})
    v2 = corpus_v2(corpus, synth, ratio=0.5, seed=0)
    assert len(v2) == 15 and (v2.source == "bootstrap").sum() == 10 and (v2.source == "synthesized").sum() == 5
    assert set(v2[v2.source == "bootstrap"]["mode"]) == {"cot"}      # a CoT-only corpus gets its mode
    assert len(corpus_v2(corpus, synth, ratio=2.0, seed=0)) == 18    # all 8 when fewer were kept
    assert len(corpus_v2(None, synth, ratio=0.5, seed=0)) == 8      # a real base: synthesized text only


# ---------------------------------------------------------------------------------------------
# Ablation variants and report

def test_variants_switch_off_one_part_each_and_seeds_move_only_the_rounds():
    from flows.ablate import SEED_STRIDE, VARIANTS, seed_overrides
    from tasks.config import load_config

    cfg = load_config(SMOKE)
    assert load_config(SMOKE, VARIANTS["no-verifier"]).verify.labels == "vote"
    assert load_config(SMOKE, VARIANTS["random-select"]).select.chooser == "random"
    assert load_config(SMOKE, VARIANTS["no-tir"]).sample.tir_fraction == 0.0
    assert seed_overrides(cfg, 0) == {}
    moved = load_config(SMOKE, seed_overrides(cfg, 2))
    assert moved.sample.seed == cfg.sample.seed + 2 * SEED_STRIDE
    assert moved.problems.seed == cfg.problems.seed + 2 * SEED_STRIDE
    assert (moved.run.seed, moved.evaluate.seed, moved.bootstrap) == (cfg.run.seed, cfg.evaluate.seed, cfg.bootstrap)


def _ablation_run(root: Path, variant: str, seed: int, greedy_by_round: list[list[int]]) -> None:
    run = root / variant / f"seed-{seed}"
    rows = []
    for k, verdicts in enumerate(greedy_by_round):
        _evaluation(run / f"round-{k:02d}" / "09-evaluate", verdicts, maj=verdicts)
        rows.append({"generation": 1, "round": k, "greedy": sum(verdicts) / len(verdicts), "maj@8": 0.5,
                     "eval_dir": f"round-{k:02d}/09-evaluate"})
    (run / "summary.json").write_text(json.dumps({"run": f"x/{variant}/seed-{seed}", "rounds": rows}))


def test_ablation_table_pairs_each_variant_with_the_full_loop_seeds_pooled(tmp_path):
    from tasks.ablation import write_ablation_report

    same = [1, 1, 0, 0]
    _ablation_run(tmp_path, "full", 0, [same, [1, 1, 1, 0]])
    _ablation_run(tmp_path, "full", 1, [same, [1, 1, 1, 1]])
    _ablation_run(tmp_path, "no-verifier", 0, [same, [1, 0, 0, 0]])
    _ablation_run(tmp_path, "no-verifier", 1, [same, [1, 1, 0, 0]])
    table = write_ablation_report(tmp_path)["table"]
    rows = {(e["variant"], e["round"]): e for e in table}
    assert rows[("full", 1)]["greedy"] == 0.875 and rows[("full", 1)]["seeds"] == 2
    assert rows[("no-verifier", 1)]["greedy"] == 0.375
    # pooled: full (1, 1, 1, .5), no-verifier (1, .5, 0, 0): per-problem differences 0, -.5, -1, -.5
    c = rows[("no-verifier", 1)]["greedy_vs_full"]
    assert (c["diff"], c["hi"] < 0) == (-0.5, True)
    assert rows[("no-verifier", 0)]["greedy_vs_full"]["diff"] == 0.0
    report = (tmp_path / "report.md").read_text()
    assert "| no-verifier | 1 | 1 | 2 | 0.375 |" in report and "-0.500 [" in report and "lower" in report
    assert json.loads((tmp_path / "ablation.json").read_text())["runs"] == {"full": [0, 1], "no-verifier": [0, 1]}


# ---------------------------------------------------------------------------------------------
# Smoke runs through the CLI

def _cli(args: list[str], log: Path, timeout: int = 1200) -> str:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        code = subprocess.run([*CLI, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout).returncode
    text = log.read_text()
    assert code == 0, text[-3000:]
    return text


def _states(text: str) -> dict[str, str]:
    """{'generation-2/round-00/pretrain': 'Completed', ...}: each task's last state, under the
    flow runs (generation, round, variant) it ran in, from Prefect's log lines."""
    states, flows = {}, {"variant": "", "generation": "", "round": "round-00"}
    for line in text.splitlines():
        if m := re.search(r"Flow run '([\w-]+)' - Beginning", line):
            name = m.group(1)
            if name.startswith("generation-"):
                flows.update(generation=name, round="round-00")
            elif name.startswith("round-") or name == "rl":
                flows["round"] = name
            elif "-seed-" in name:
                flows.update(variant=name, generation="", round="round-00")
        if m := re.search(r"Task run '([a-z-]+)-[0-9a-f]{3}' - Finished in state (\w+)", line):
            where = "/".join(x for x in (flows["variant"], flows["generation"], flows["round"]) if x)
            states[f"{where}/{m.group(1)}"] = m.group(2)
    return states


def test_two_generations_on_the_smoke_config(tmp_path):
    text = _cli(["run", str(SMOKE), "--home", str(tmp_path), "--generations", "2", "--rounds", "1",
                 "--set", "generation_overrides.2={sft.train.epochs: 3}"], tmp_path / "gen.log")
    run = tmp_path / "smoke"
    rows = json.loads((run / "summary.json").read_text())["rounds"]
    assert [(r["generation"], r["round"]) for r in rows] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert rows[2]["eval_dir"] == "gen-2/round-00/09-evaluate"
    synth = pd.read_parquet(run / "gen-2" / "round-00" / "04-synthesize" / "synthesized.parquet")
    corpus_v1 = pd.read_parquet(run / "round-00" / "00-bootstrap" / "corpus.parquet")
    corpus_v2 = pd.read_parquet(run / "gen-2" / "round-00" / "05-pretrain" / "corpus.parquet")
    # the smoke model is too small to solve much: what is kept is exactly the problems with a
    # verified, untruncated sample (tests above check the rows themselves on a frame with some)
    verified = pd.read_parquet(run / "gen-2" / "round-00" / "03-verify" / "verified.parquet")
    solved = verified[verified.correct.fillna(False).astype(bool) & (verified.finish_reason != "length")]
    assert len(synth) == rows[2]["synthesized"] == solved.problem_id.nunique()
    assert len(corpus_v2) == len(corpus_v1) + min(len(synth), round(0.25 * len(corpus_v1)))
    assert (corpus_v2.source == "bootstrap").sum() == len(corpus_v1)
    assert rows[2]["corpus"] == len(corpus_v2)
    held_out = set(pd.read_parquet(run / "round-00" / "09-evaluate" / "per_problem.parquet").id)
    samples = pd.read_parquet(run / "gen-2" / "round-00" / "02-sample" / "samples.parquet")
    assert samples.problem_id.nunique() == 64 and not held_out & set(samples.problem_id)
    assert (run / "gen-2" / "round-01" / "06-sft" / "model" / "config.json").exists()
    # generation 2's SFT ran with its override (3 epochs of batches of 32), generation 1's without
    sft_1, sft_2 = (json.loads((run / d / "round-01" / "06-sft" / "manifest.json").read_text())["counts"]
                    for d in (".", "gen-2"))
    assert sft_1["train_steps"] == math.ceil(sft_1["train_examples"] / 32)
    assert sft_2["train_steps"] == 3 * math.ceil(sft_2["train_examples"] / 32)
    states = _states(text)
    assert states["generation-2/round-00/pretrain"] == "Completed"
    assert states["generation-2/round-01/sft"] == "Completed"
    report = (run / "report.md").read_text()
    assert "base v2 vs base v1" in report and "generation 2 vs 1, last round" in report
    assert "| 2 | 1 | cot |" in report        # generation 2, round 1 in the per-mode table


def test_ablation_of_one_variant_shares_the_bootstrap(tmp_path):
    text = _cli(["ablate", str(SMOKE), "--variant", "random-select", "--seeds", "1", "--rounds", "2",
                 "--home", str(tmp_path), "--run", "abl"], tmp_path / "ablate.log")
    root = tmp_path / "abl"
    states = _states(text)
    assert states["full-seed-0/generation-1/round-00/bootstrap"] == "Completed"
    assert states["random-select-seed-0/generation-1/round-00/bootstrap"] == "Cached"
    # round 1 has no reward model, so random-select is the full loop there: linked, not redone
    assert states["random-select-seed-0/generation-1/round-01/sft"] == "Cached"
    assert states["random-select-seed-0/generation-1/round-02/select"] == "Completed"
    full_model = root / "full" / "seed-0" / "round-00" / "00-bootstrap" / "model" / "model.safetensors"
    variant_model = root / "random-select" / "seed-0" / "round-00" / "00-bootstrap" / "model" / "model.safetensors"
    assert full_model.stat().st_ino == variant_model.stat().st_ino      # one file on disk, two runs
    table = json.loads((root / "ablation.json").read_text())["table"]
    assert [(e["variant"], e["round"]) for e in table] == [("full", 0), ("full", 1), ("full", 2),
                                                           ("random-select", 0), ("random-select", 1),
                                                           ("random-select", 2)]
    assert table[4]["greedy_vs_full"]["diff"] == 0.0      # round 1 is the same run in both
    assert "random-select" in (root / "report.md").read_text()

    # another run reuses the ablation's finished stages through --cache-from: nothing recomputed
    text = _cli(["run", str(SMOKE), "--rounds", "2", "--home", str(tmp_path), "--run", "again",
                 "--cache-from", str(root)], tmp_path / "again.log")
    assert re.search(r"--cache-from: \d+ stage records", text)
    assert set(_states(text).values()) == {"Cached"}, _states(text)
    again = tmp_path / "again" / "round-00" / "00-bootstrap" / "model" / "model.safetensors"
    assert again.stat().st_ino == full_model.stat().st_ino


def test_run_report_compares_rm_with_vote_grpo_with_its_round_and_generations(tmp_path):
    from tasks.report import comparisons, write_run_report

    def evaluation(folder: str, greedy, maj, rm=None):
        d = tmp_path / folder
        d.mkdir(parents=True)
        df = pd.DataFrame({"id": ["a", "b", "c", "d"], "mode": "cot", "greedy": greedy, "maj": maj})
        if rm is not None:
            df["rm"] = rm
        df.astype({c: bool for c in ("greedy", "maj", "rm") if c in df}).to_parquet(d / "per_problem.parquet")
        return folder

    rows = [
        {"generation": 1, "round": 0, "greedy": 0.25, "eval_dir": evaluation("g1r0", [1, 0, 0, 0], [1, 0, 0, 0])},
        {"generation": 1, "round": 1, "greedy": 0.5, "rm_pair_acc": 0.6,
         "eval_dir": evaluation("g1r1", [1, 1, 0, 0], [1, 1, 0, 0], rm=[1, 0, 0, 0])},
        {"generation": 2, "round": 0, "greedy": 0.75, "eval_dir": evaluation("g2r0", [1, 1, 1, 0], [1, 1, 1, 0])},
        {"generation": 2, "round": 1, "greedy": 0.75, "rm_pair_acc": 0.7,
         "eval_dir": evaluation("g2r1", [1, 1, 1, 0], [1, 1, 1, 0], rm=[1, 1, 1, 1])},
        {"generation": 2, "round": 2, "phase": "grpo", "greedy": 1.0, "rm_pair_acc": None,
         "eval_dir": evaluation("grpo", [1, 1, 1, 1], [1, 1, 1, 1], rm=[1, 1, 1, 1])},
    ]
    found = {c["comparison"] + "/" + c["metric"]: c["diff"] for c in comparisons(tmp_path, rows)}
    assert found == {"rm vs maj, round g1 1/rm - maj": -0.25, "rm vs maj, round g2 1/rm - maj": 0.25,
                     "rm vs maj, round g2 grpo/rm - maj": 0.0, "GRPO vs the last SFT round/greedy": 0.25,
                     "base v2 vs base v1/greedy": 0.5, "base v2 vs base v1/maj": 0.5,
                     "generation 2 vs 1, last round/greedy": 0.25, "generation 2 vs 1, last round/maj": 0.25}
    (tmp_path / "summary.json").write_text(json.dumps({"run": "t", "rounds": rows}))
    report = write_run_report(tmp_path).read_text()
    assert "## Paired comparisons" in report and "| GRPO vs the last SFT round | cot | greedy |" in report
