"""The stage contract: one entry point per stage module, cache keys derived from exactly the
arguments the flow passes it, and invalidation that follows the config fields each stage reads."""
from __future__ import annotations

import inspect
import logging

import pandas as pd
import pytest

from flows import launch, stages
from tasks.common import StageResult, check_checkpoint
from tasks.config import Config

# ---------------------------------------------------------------------------------------------
# Which stages a config change invalidates, through the real flows with the stage bodies faked

FAKE_COUNTS = {"sample_acc": 0.5, "greedy": 0.5, "n_sft": 1, "rm_pair_acc": 0.5, "corpus": 1, "synthesized": 1,
               "reward_first": 0.0, "reward_last": 0.0}
# what each stage takes as inputs (a one-round run with GRPO); a stage is invalidated by its own
# config fields and by any input that changed
DEPENDS = {
    "round-00/bootstrap": [], "round-00/evaluate": ["round-00/bootstrap"],
    "round-01/problems": [], "round-01/sample": ["round-00/bootstrap", "round-01/problems"],
    "round-01/verify": ["round-01/sample", "round-01/problems"], "round-01/score": ["round-01/verify"],
    "round-01/select": ["round-01/score"], "round-01/sft": ["round-00/bootstrap", "round-01/select"],
    "round-01/reward-sample": ["round-01/sft", "round-01/problems"],
    "round-01/reward": ["round-01/sft", "round-01/reward-sample"],
    "round-01/evaluate": ["round-01/sft", "round-01/reward", "round-00/evaluate"],
    "rl/problems": [], "rl/grpo": ["round-01/sft", "round-01/reward", "rl/problems"],
    "rl/evaluate": ["rl/grpo", "round-01/reward", "round-01/evaluate"],
}
# (config field, new value, the stages that read it)
READS = [
    ("run.seed", 5, ["bootstrap"]),
    ("bootstrap.corpus_size", 99, ["bootstrap"]),
    ("world.max_digits", 2, ["bootstrap", "problems", "evaluate"]),
    ("evaluate.n_test", 50, ["bootstrap", "problems", "evaluate"]),
    ("evaluate.n", 3, ["evaluate"]),
    ("problems.n_per_round", 10, ["problems"]),
    ("decontaminate.lcs_ratio", 0.7, ["problems", "select"]),
    ("prompt.template", "Q: {question}\n", ["bootstrap", "sample", "sft", "reward-sample", "evaluate", "grpo"]),
    ("engine.max_num_seqs", 7, ["sample", "reward-sample", "evaluate"]),
    ("tir.max_calls", 1, ["sample", "reward-sample", "evaluate"]),
    ("sample.n", 3, ["sample"]),
    ("sample.top_p", 0.9, ["sample", "reward-sample"]),
    ("sample.stop", ["END"], ["sample", "reward-sample", "evaluate"]),
    ("verify.vote_min_share", 0.7, ["verify", "sft", "reward-sample", "evaluate", "grpo"]),
    ("score.batch_size", 3, ["score", "evaluate", "grpo"]),
    ("select.max_per_problem", 1, ["select"]),
    ("sft.train.lr", 1e-3, ["sft"]),
    ("reward.n", 4, ["reward-sample", "reward"]),
    ("reward.train.lr", 1e-3, ["reward"]),
    ("grpo.max_steps", 3, ["grpo"]),
    ("verify.labels", "vote", ["verify", "sft", "reward-sample", "grpo"]),   # evaluation keeps the gold
    ("select.chooser", "random", []),   # round 1 has no reward model: the choice is random either way
    ("sample.seed", 3, ["sample", "reward-sample", "select"]),
    ("synthesize.n", 3, []),            # one generation: nothing is synthesized
    ("pretrain.train.lr", 1e-3, []),
    ("run.name", "other", []),
    ("cluster.shards", 4, []),      # where a stage runs never changes what it computes
    ("sft.train.num_processes", 2, []),
]


def _closure(direct: set[str]) -> set[str]:
    out = set(direct)
    while True:
        more = {s for s, deps in DEPENDS.items() if out & set(deps)} - out
        if not more:
            return out
        out |= more


class _FakeTask:
    def __init__(self, keys: dict):
        self.keys = keys

    def with_options(self, **_):
        return self

    def __call__(self, cfg, out_dir, args, key):
        folder = out_dir.replace("\\", "/").split("/")
        name = f"{folder[-2]}/{folder[-1].split('-', 1)[1]}"
        if folder[-3].startswith("gen-"):
            name = f"{folder[-3]}/{name}"
        self.keys[name] = key
        return StageResult(name.split("/")[1], out_dir, key, key, dict(FAKE_COUNTS))


def stage_keys(cfg: Config, tmp_path, monkeypatch) -> dict[str, str]:
    """{"round-01/sample": key, ...} for bootstrap + 1 round + GRPO, computed by the real flows."""
    from flows import rl, round as round_flow, self_improve

    keys: dict[str, str] = {}
    monkeypatch.setattr(stages, "TASKS", {name: _FakeTask(keys) for name in launch.MODULES})
    for module in (round_flow, rl, self_improve):
        monkeypatch.setattr(module, "get_run_logger", lambda: logging.getLogger("test"))
    monkeypatch.setattr(self_improve, "_record", lambda *a, **k: None)

    class _Plain:               # the child flows called as plain functions
        def __init__(self, fn):
            self.fn = fn

        def with_options(self, **_):
            return self.fn

    monkeypatch.setattr(self_improve, "improve_round", _Plain(round_flow.improve_round.fn))
    monkeypatch.setattr(self_improve, "generation", _Plain(self_improve.generation.fn))
    monkeypatch.setattr(rl, "rl", _Plain(rl.rl.fn))
    cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"rounds": 1}),
                                 "grpo": cfg.grpo.model_copy(update={"enabled": True})})
    tmp_path.mkdir(parents=True, exist_ok=True)
    self_improve.self_improve.fn(cfg, str(tmp_path), "t")
    return keys


def _with(cfg: Config, dotted: str, value) -> Config:
    data = cfg.model_dump()
    node = data
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return Config.model_validate(data)


@pytest.fixture(scope="module")
def base_keys(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    try:
        yield stage_keys(Config(), tmp_path_factory.mktemp("base"), mp)
    finally:
        mp.undo()


@pytest.mark.parametrize("field,value,readers", READS, ids=[r[0] for r in READS])
def test_a_field_invalidates_its_readers_and_what_follows_only(field, value, readers, base_keys, tmp_path,
                                                               monkeypatch):
    assert set(base_keys) == set(DEPENDS)
    changed_keys = stage_keys(_with(Config(), field, value), tmp_path, monkeypatch)
    changed = {s for s in DEPENDS if changed_keys[s] != base_keys[s]}
    direct = {s for s in DEPENDS if s.split("/")[1] in readers}
    assert changed == _closure(direct), f"{field}: changed {sorted(changed)}"


# Two generations: (field, the generation-2 stages it changes besides what follows them)
GEN2_READS = [
    ("synthesize.n", ["gen-2/round-00/sample"]),
    ("synthesize.seed", ["gen-2/round-00/problems", "gen-2/round-00/sample", "gen-2/round-00/synthesize"]),
    ("pretrain.synth_ratio", ["gen-2/round-00/pretrain"]),
    ("pretrain.train.lr", ["gen-2/round-00/pretrain"]),
]
# what each generation-2 stage takes, on top of DEPENDS's generation 1
GEN2_DEPENDS = {
    "gen-2/round-00/problems": [], "gen-2/round-00/sample": ["round-01/sft", "gen-2/round-00/problems"],
    "gen-2/round-00/verify": ["gen-2/round-00/sample", "gen-2/round-00/problems"],
    "gen-2/round-00/synthesize": ["gen-2/round-00/verify", "gen-2/round-00/problems"],
    "gen-2/round-00/pretrain": ["round-00/bootstrap", "gen-2/round-00/synthesize"],
    "gen-2/round-00/evaluate": ["gen-2/round-00/pretrain", "round-00/evaluate"],
    "gen-2/round-01/problems": [], "gen-2/round-01/sample": ["gen-2/round-00/pretrain", "gen-2/round-01/problems"],
    "gen-2/round-01/verify": ["gen-2/round-01/sample", "gen-2/round-01/problems"],
    "gen-2/round-01/score": ["gen-2/round-01/verify"], "gen-2/round-01/select": ["gen-2/round-01/score"],
    "gen-2/round-01/sft": ["gen-2/round-00/pretrain", "gen-2/round-01/select"],
    "gen-2/round-01/reward-sample": ["gen-2/round-01/sft", "gen-2/round-01/problems"],
    "gen-2/round-01/reward": ["gen-2/round-01/sft", "gen-2/round-01/reward-sample"],
    "gen-2/round-01/evaluate": ["gen-2/round-01/sft", "gen-2/round-01/reward", "gen-2/round-00/evaluate"],
    "gen-2/rl/problems": [], "gen-2/rl/grpo": ["gen-2/round-01/sft", "gen-2/round-01/reward", "gen-2/rl/problems"],
    "gen-2/rl/evaluate": ["gen-2/rl/grpo", "gen-2/round-01/reward", "gen-2/round-01/evaluate"],
}


def _two_generations(cfg: Config) -> Config:
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"generations": 2})})


@pytest.mark.parametrize("field,direct", GEN2_READS, ids=[r[0] for r in GEN2_READS])
def test_generation_two_fields_invalidate_generation_two_only(field, direct, tmp_path, monkeypatch):
    graph = {**{k: v for k, v in DEPENDS.items() if not k.startswith("rl/")}, **GEN2_DEPENDS}
    base = stage_keys(_two_generations(Config()), tmp_path / "base", monkeypatch)
    assert set(base) == set(graph)
    changed_keys = stage_keys(_two_generations(_with(Config(), field, 7 if "seed" in field else 0.5 if "ratio" in field
                                                     else 3 if field.endswith(".n") else 1e-3)),
                              tmp_path / "changed", monkeypatch)
    changed = {s for s in graph if changed_keys[s] != base[s]}
    expected, todo = set(direct), list(direct)
    while todo:
        node = todo.pop()
        for s, deps in graph.items():
            if node in deps and s not in expected:
                expected.add(s)
                todo.append(s)
    assert changed == expected, f"{field}: changed {sorted(changed)}"
    # the second generation's round problems are the first's: same key (hard-linked, not redrawn)
    assert base["gen-2/round-01/problems"] == base["round-01/problems"]


def test_every_stage_is_covered_by_a_field_it_reads():
    read = {stage for _, _, readers in READS for stage in readers}
    read |= {d.split("/")[-1] for _, direct in GEN2_READS for d in direct}
    assert read == set(launch.MODULES)


def test_file_problems_policy_and_engine_are_inputs_only_when_the_policy_evolves_them(tmp_path, monkeypatch):
    data = tmp_path / "p.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n')
    files = {"source": "files", "files": [{"path": str(data)}]}
    plain = Config.model_validate({"problems": files})
    evolving = Config.model_validate({"problems": {**files, "evolve": {"fraction": 0.5}}})
    keys = {name: stage_keys(c, tmp_path / name, monkeypatch) for name, c in
            (("plain", plain), ("plain-engine", _with(plain, "engine.max_num_seqs", 3)),
             ("evolving", evolving), ("evolving-engine", _with(evolving, "engine.max_num_seqs", 3)))}
    assert keys["plain"]["round-01/problems"] == keys["plain-engine"]["round-01/problems"]
    assert keys["evolving"]["round-01/problems"] != keys["evolving-engine"]["round-01/problems"]
    data.write_text('{"question": "1+2?", "answer": "3"}\n')       # the file's content is an input
    assert stage_keys(plain, tmp_path / "edited", monkeypatch)["round-01/problems"] != keys["plain"]["round-01/problems"]


# ---------------------------------------------------------------------------------------------
# The contract itself

@pytest.mark.parametrize("stage", list(launch.MODULES))
def test_each_stage_module_has_one_keyword_entry_point_and_a_command(stage):
    mod = launch.module(stage)
    params = inspect.signature(mod.run).parameters
    assert "out_dir" in params and all(p.kind == p.KEYWORD_ONLY for p in params.values())
    source = inspect.getsource(mod)
    assert 'if __name__ == "__main__":\n    stage_main(run)' in source
    if stage in launch.SHARDED:
        assert "shard" in params and mod.OUTPUTS and callable(mod.finish)


def test_stage_code_covers_what_a_stage_imports_and_nothing_else():
    assert {"sample", "generation", "tir", "sandbox", "engine", "prompts", "shards"} <= set(stages.stage_modules("sample"))
    assert {"evaluate", "generation", "tir", "rm", "report", "verify"} <= set(stages.stage_modules("evaluate"))
    assert not {"bootstrap", "world", "sft"} & set(stages.stage_modules("score"))
    assert "sandbox" not in stages.stage_modules("verify")
    assert not {"config", "common", "progress"} & set(stages.stage_modules("sample"))


def test_a_stage_runs_from_its_spec_as_a_command(tmp_path):
    """`python -m tasks.select --spec` runs the stage like the flow does and writes its record."""
    import json
    import subprocess
    import sys

    from tasks.common import write_spec

    scored = tmp_path / "scored.parquet"
    pd.DataFrame({"problem_id": ["a", "a", "b"], "prompt": ["p"] * 3, "response": ["x", "y", "z"],
                  "correct": [True, True, False], "rm_score": [0.1, 0.9, 0.5]}).to_parquet(scored)
    cfg = Config()
    out = tmp_path / "out"
    out.mkdir()
    spec = write_spec(tmp_path / "spec.json", {"select": cfg.select, "decontaminate": cfg.decontaminate, "seed": 1,
                                              "scored": scored, "out_dir": out})
    subprocess.run([sys.executable, "-m", "tasks.select", "--spec", str(spec), "--record", str(tmp_path / "r.json")],
                   check=True, cwd=launch.REPO)
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["kept"] == 2 and record["chooser"] == "rm"
    assert list(pd.read_parquet(out / "sft.parquet").completion) == ["y", "x"]
    bad = write_spec(tmp_path / "bad.json", {"select": {"max_per_problem": 0}, "decontaminate": {}, "seed": 1,
                                             "scored": scored, "out_dir": out})
    proc = subprocess.run([sys.executable, "-m", "tasks.select", "--spec", str(bad)], capture_output=True, text=True,
                          cwd=launch.REPO)
    assert proc.returncode != 0 and "max_per_problem" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Stage bodies on tiny frames

def test_missing_or_corrupt_checkpoint_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        check_checkpoint(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weights"):
        check_checkpoint(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "m" / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="corrupt"):
        check_checkpoint(tmp_path / "m")


def test_verify_stage_writes_counts_and_math_verify_audit(tmp_path):
    from tasks.config import VerifyConfig
    from tasks.verify_stage import run

    pd.DataFrame({"problem_id": ["a", "a", "b", "c"], "prompt": [""] * 4,
                  "response": ["so \\boxed{3}", "\\boxed{4}", "\\boxed{(2,\\infty]}", "no answer here"]}
                 ).to_parquet(tmp_path / "samples.parquet")
    pd.DataFrame({"id": ["a", "b", "c"], "gold": ["3", "(2,\\infty)", "7"]}).to_parquet(tmp_path / "problems.parquet")
    counts = run(verify=VerifyConfig(workers=1), samples=tmp_path / "samples.parquet",
                 problems=tmp_path / "problems.parquet", out_dir=tmp_path)
    assert counts["correct"] == 1 and counts["wrong"] == 2 and counts["no_answer"] == 1
    audit = pd.read_parquet(tmp_path / "audit.parquet")
    # math-verify accepts a half-open interval for an open one; ours does not: that row is audited
    assert list(audit.problem_id) == ["b"] and counts["mv_disagreements"] == 1


def test_verify_shards_merge_to_the_unsharded_output(tmp_path):
    """Shards split by problem; concatenated in order they give the whole file and the same counts."""
    from tasks.config import VerifyConfig
    from tasks.shards import concat_parts
    from tasks.verify_stage import finish, run

    ids = [f"p{i}" for i in range(7) for _ in range(3)]
    pd.DataFrame({"problem_id": ids, "prompt": [""] * len(ids),
                  "response": [f"\\boxed{{{i % 4}}}" for i in range(len(ids))]}).to_parquet(tmp_path / "samples.parquet")
    pd.DataFrame({"id": sorted(set(ids)), "gold": ["1"] * 7}).to_parquet(tmp_path / "problems.parquet")
    args = dict(verify=VerifyConfig(workers=0, audit=False), samples=tmp_path / "samples.parquet",
                problems=tmp_path / "problems.parquet")
    whole = tmp_path / "whole"
    whole.mkdir()
    expected = run(**args, out_dir=whole)
    parts = []
    for i in range(3):
        parts.append(tmp_path / f"part{i}")
        parts[-1].mkdir()
        run(**args, out_dir=parts[-1], shard=(i, 3))
    assert [pd.read_parquet(p / "verified.parquet").problem_id.nunique() for p in parts] == [2, 2, 3]
    merged = tmp_path / "merged"
    merged.mkdir()
    for name in ("verified.parquet", "audit.parquet"):
        concat_parts(parts, name, merged)
    pd.testing.assert_frame_equal(pd.read_parquet(merged / "verified.parquet"), pd.read_parquet(whole / "verified.parquet"))
    assert finish(merged) == expected and expected["correct"] == 5


def test_verify_stage_votes_where_there_is_no_gold(tmp_path):
    """No gold: the majority answer stands in when enough samples agree, else nothing is trusted."""
    from tasks.config import VerifyConfig
    from tasks.grading import verify_frame

    samples = pd.DataFrame({
        "problem_id": ["g", "g", "v", "v", "v", "v", "s", "s", "s"],
        "response": ["\\boxed{5}", "\\boxed{6}",
                     "\\boxed{1/2}", "\\boxed{0.5}", "\\boxed{3}", "no answer",   # 2 of 3 answered agree
                     "\\boxed{1}", "\\boxed{2}", "\\boxed{3}"]})                  # no majority of the answered
    gold = pd.Series({"g": "5", "v": None, "s": None})
    out = verify_frame(VerifyConfig(workers=0, audit=False), samples, gold)
    assert list(out.gold_source.fillna("none")) == ["gold"] * 2 + ["vote"] * 4 + ["none"] * 3
    assert list(out.correct[:6]) == [True, False, True, True, False, False]
    assert list(out.status[2:6]) == ["vote_correct", "vote_correct", "vote_wrong", "vote_no_answer"]
    assert out.correct[6:].isna().all() and set(out.status[6:]) == {"no_consensus"}
    off = verify_frame(VerifyConfig(workers=0, audit=False, vote=False), samples, gold)
    assert off.correct[2:].isna().all() and set(off.status[2:]) <= {"unverified", "no_answer"}


def test_bootstrap_replay_takes_only_verified_corpus_rows():
    from tasks import world
    from tasks.config import VerifyConfig
    from tasks.sft import verified_corpus

    rows = world.bootstrap_corpus(300, seed=0, ops=["add", "sub", "mul"], max_digits=2, zh_fraction=0.5,
                                  sloppy_fraction=0.6, tir_fraction=0.3, tir_sloppy_fraction=0.2)
    corpus = pd.DataFrame(rows)
    kept = verified_corpus(corpus, VerifyConfig(workers=0))
    assert corpus.sloppy.any() and not kept.sloppy.any()           # the sloppy tutor's rows are all wrong
    assert len(kept) == (~corpus.sloppy).sum() and set(kept["mode"]) == {"cot", "tir"}
