"""Cache keys: content-based, sensitive to exactly the config sections and inputs a stage reads."""
from __future__ import annotations

import pytest

from flows.stages import STAGE_CODE, STAGE_CONFIG, input_digests, stage_key
from tasks.common import check_checkpoint
from tasks.common import StageResult
from tasks.config import Config


def with_change(**sections) -> Config:
    return Config.model_validate(sections)


def test_key_follows_own_config_section_only():
    base = Config()
    changed_select = with_change(select={"max_per_problem": 1})
    assert stage_key("select", base, {}) != stage_key("select", changed_select, {})
    for upstream in ("problems", "sample", "verify"):
        assert stage_key(upstream, base, {}) == stage_key(upstream, changed_select, {})


def test_key_follows_input_digests_not_paths():
    a = StageResult("sample", "/runs/a/round-01/02-sample", "k", "digest-1")
    b = StageResult("sample", "/elsewhere/b/round-01/02-sample", "k", "digest-1")
    c = StageResult("sample", "/runs/a/round-01/02-sample", "k", "digest-2")
    cfg = Config()
    key = lambda r: stage_key("verify", cfg, input_digests({"samples": r}))
    assert key(a) == key(b) != key(c)
    assert input_digests({"kept": [a, c], "round": 2}) == {"kept": ["digest-1", "digest-2"], "round": 2}


def test_run_name_and_round_count_never_invalidate():
    base = Config()
    other = with_change(run={"name": "other", "rounds": 9})
    for stage in STAGE_CONFIG:
        assert stage_key(stage, base, {}) == stage_key(stage, other, {}), stage


def test_every_stage_has_code_and_config_entries():
    assert set(STAGE_CODE) == set(STAGE_CONFIG)


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
    import pandas as pd

    from tasks.config import VerifyConfig
    from tasks.verify_stage import run_verify

    pd.DataFrame({"problem_id": ["a", "a", "b", "c"], "prompt": [""] * 4,
                  "response": ["so \\boxed{3}", "\\boxed{4}", "\\boxed{(2,\\infty]}", "no answer here"]}
                 ).to_parquet(tmp_path / "samples.parquet")
    pd.DataFrame({"id": ["a", "b", "c"], "gold": ["3", "(2,\\infty)", "7"]}).to_parquet(tmp_path / "problems.parquet")
    counts = run_verify(VerifyConfig(workers=1), tmp_path / "samples.parquet", tmp_path / "problems.parquet", tmp_path)
    assert counts["correct"] == 1 and counts["wrong"] == 2 and counts["no_answer"] == 1
    audit = pd.read_parquet(tmp_path / "audit.parquet")
    # math-verify accepts a half-open interval for an open one; ours does not: that row is audited
    assert list(audit.problem_id) == ["b"] and counts["mv_disagreements"] == 1


def test_stage_code_covers_the_modules_a_stage_imports():
    """A stage's cache key hashes the source of every tasks module it reaches through imports."""
    from flows.stages import stage_modules

    assert {"sample", "tir", "sandbox", "engine", "prompts", "verify_stage", "verify"} <= set(stage_modules("sample"))
    assert {"evaluate", "sample", "tir", "reward", "report", "verify"} <= set(stage_modules("evaluate"))
    assert "sandbox" not in stage_modules("verify")
    assert "config" not in stage_modules("sample")


def test_verify_stage_votes_where_there_is_no_gold(tmp_path):
    """No gold: the majority answer stands in when enough samples agree, else nothing is trusted."""
    import pandas as pd

    from tasks.config import VerifyConfig
    from tasks.verify_stage import verify_frame

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
    import pandas as pd

    from tasks import world
    from tasks.config import VerifyConfig
    from tasks.sft import _verified_corpus

    rows = world.bootstrap_corpus(300, seed=0, ops=["add", "sub", "mul"], max_digits=2, zh_fraction=0.5,
                                  sloppy_fraction=0.6, tir_fraction=0.3, tir_sloppy_fraction=0.2)
    corpus = pd.DataFrame(rows)
    kept = _verified_corpus(corpus, VerifyConfig(workers=0))
    assert corpus.sloppy.any() and not kept.sloppy.any()           # the sloppy tutor's rows are all wrong
    assert len(kept) == (~corpus.sloppy).sum() and set(kept["mode"]) == {"cot", "tir"}


def test_verify_stage_gives_a_cut_off_response_no_last_number_answer():
    import pandas as pd

    from tasks.config import VerifyConfig
    from tasks.verify_stage import verify_frame

    samples = pd.DataFrame({"problem_id": ["a", "a", "a"],
                            "response": ["x = 4 and then 4", "x = 4 and then 4", "\\boxed{4} and 5"],
                            "finish_reason": ["stop", "length", "length"]})
    out = verify_frame(VerifyConfig(workers=0, audit=False), samples, pd.Series({"a": "4"}))
    assert list(out.status) == ["correct", "no_answer", "correct"]
