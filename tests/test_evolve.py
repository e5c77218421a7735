"""Problem evolution and file sources in the problems stage."""
from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from tasks import evolve, world
from tasks.config import Config, load_config


def _parent(op, a, b, lang="en"):
    return {"id": f"p-{op}-{a}-{b}", "op": op, "a": a, "b": b, "lang": lang, "question": "q", "gold": str(world.exact(op, a, b))}


@pytest.mark.parametrize("op, a, b", [("add", 47, 38), ("sub", 91, 7), ("mul", 63, 4)])
def test_numbers_variant_keeps_the_operation_and_digit_counts(op, a, b):
    rng = random.Random(0)
    for _ in range(50):
        kid = evolve.world_variant(_parent(op, a, b), "numbers", rng)
        assert kid["op"] == op and kid["evolution"] == "numbers" and kid["parent_id"] == f"p-{op}-{a}-{b}"
        assert (kid["a"], kid["b"]) != (a, b)
        assert sorted(map(len, map(str, (kid["a"], kid["b"])))) == sorted(map(len, map(str, (a, b))))
        assert kid["gold"] == str(world.exact(op, kid["a"], kid["b"]))
        assert str(kid["a"]) in kid["question"] and str(kid["b"]) in kid["question"]


def test_inverse_variant_asks_for_the_parent_operand():
    rng = random.Random(0)
    kid = evolve.world_variant(_parent("add", 47, 38), "inverse", rng)
    assert (kid["op"], kid["a"], kid["b"], kid["gold"]) == ("sub", 85, 38, "47")
    assert "85" in kid["question"] and "38" in kid["question"] and "at first" in kid["question"]
    kid = evolve.world_variant(_parent("sub", 91, 7, "zh"), "inverse", rng)
    assert (kid["op"], kid["a"], kid["b"], kid["gold"]) == ("add", 84, 7, "91")
    assert "原来" in kid["question"]
    kid = evolve.world_variant(_parent("mul", 63, 4), "inverse", rng)   # no division: new numbers
    assert kid["op"] == "mul" and kid["evolution"] == "numbers"
    assert evolve.world_variant(_parent("add", 1, 2), "condition", rng) is None   # not for the world


def test_evolve_world_counts_ids_and_exclusion():
    parents = world.make_problems(50, seed=3, ops=["add", "sub", "mul"], max_digits=2, zh_fraction=0.5)
    exclude = {("sub", p["a"] + p["b"], p["b"]) for p in parents if p["op"] == "add"}
    kids = evolve.evolve_world(parents, 40, seed=1, kinds=["numbers", "inverse"], exclude=exclude)
    assert len(kids) == 40 and len({k["id"] for k in kids}) == 40
    assert all((k["op"], k["a"], k["b"]) not in exclude for k in kids)
    assert {k["parent_id"] for k in kids} <= {p["id"] for p in parents}
    assert kids == evolve.evolve_world(parents, 40, seed=1, kinds=["numbers", "inverse"], exclude=exclude)


@pytest.mark.parametrize("reply, expected", [
    ("New problem: Sam has 5 apples. How many now?", "Sam has 5 apples. How many now?"),
    ("Tom buys 3 pens at $2 each. What does he pay?\n\nThe answer is 6.", "Tom buys 3 pens at $2 each. What does he pay?"),
    ("q", None),                                          # too short
    ("Tom has 3 apples and buys 2", None),                # cut off
    ("What is 3 plus 4?", None),                          # a copy of the parent
])
def test_clean_generated(reply, expected):
    assert evolve.clean_generated(reply, "What is 3 plus 4?") == expected


def test_evolve_with_llm_uses_the_callers_engine_and_leaves_gold_to_the_vote():
    parents = [{"id": f"gsm8k/{i}", "source": "gsm8k", "lang": "en", "question": f"Problem {i}?", "gold": "1"}
               for i in range(3)]
    seen = []

    def fake(messages):
        seen.extend(messages)
        return ["Sam has 7 apples. How many now?", "", "A train goes 60 km in 2 hours. How fast is it?"]

    kids = evolve.evolve_with_llm(fake, parents, kinds=["numbers", "condition", "inverse"], seed=0)
    assert len(seen) == 3 and all("Reply with the new problem only." in m and "Problem " in m for m in seen)
    assert [k["parent_id"] for k in kids] == ["gsm8k/0", "gsm8k/2"]
    assert all(k["gold"] is None and k["evolution"] in evolve.LLM_INSTRUCTIONS for k in kids)


# ---------------------------------------------------------------- the problems stage

def _cfg(tmp_path, **problems) -> Config:
    return Config.model_validate({"problems": problems, "evaluate": {"n_test": 20}})


def run_problems(cfg, k, out_dir, policy_dir=None):
    from tasks.problems import run
    return run(problems=cfg.problems, world=cfg.world, decontaminate=cfg.decontaminate, round_k=k,
               n_test=cfg.evaluate.n_test, test_seed=cfg.evaluate.seed, out_dir=out_dir, policy=policy_dir,
               engine=cfg.engine, prompt=cfg.prompt)


def test_problems_stage_world_with_evolution(tmp_path):
    cfg = _cfg(tmp_path, n_per_round=200, evolve={"fraction": 0.25})
    counts = run_problems(cfg, 1, tmp_path)
    df = pd.read_parquet(tmp_path / "problems.parquet")
    assert counts["problems"] == 250 and counts["evolved"] == 50
    kids = df[df.parent_id.notna()]
    assert len(kids) == 50 and set(kids.source) == {"world-evolved"} and kids.parent_id.isin(df.id).all()
    assert all(g == str(world.exact(o, a, b)) for g, o, a, b in zip(kids.gold, kids.op, kids.a, kids.b))


def test_problems_stage_files_bad_rows_and_sampling(tmp_path):
    path = tmp_path / "mine.jsonl"
    lines = [json.dumps({"prompt": f"What is {i} plus 1?", "target": str(i + 1)}) for i in range(30)]
    lines[4] = "{not json"
    lines[9] = json.dumps({"prompt": "", "target": "1"})
    lines[12] = json.dumps({"prompt": "No gold here, what is 2 plus 2?"})
    path.write_text("\n".join(lines) + "\n")
    cfg = _cfg(tmp_path, source="files", n_per_round=20,
               files=[{"path": str(path), "field_map": {"question": "prompt", "gold": "target"}}])
    out = tmp_path / "out"
    out.mkdir()
    counts = run_problems(cfg, 1, out)
    df = pd.read_parquet(out / "problems.parquet")
    bad = pd.read_parquet(out / "bad_rows.parquet")
    assert counts["bad_rows"] == 2 and list(bad.line) == [5, 10] and set(bad.file) == {str(path)}
    assert list(bad.field) == ["-", "prompt"]
    assert len(df) == 20 and df.id.str.startswith("mine/").all() and df.id.is_unique
    assert counts["with_gold"] == df.gold.notna().sum()
    again = tmp_path / "again"
    again.mkdir()
    run_problems(cfg, 1, again)
    assert list(pd.read_parquet(again / "problems.parquet").id) == list(df.id)    # seeded by round
    strict = cfg.model_copy(update={"problems": cfg.problems.model_copy(update={"on_bad": "error"})})
    with pytest.raises(ValueError, match=r"mine.jsonl:5"):
        run_problems(strict, 1, again)


def test_problems_stage_files_evolved_by_the_policy(tmp_path, monkeypatch):
    from tasks import problems
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"question": f"Tom has {i} apples. How many?", "answer": str(i)}) + "\n"
                            for i in range(10)))
    cfg = _cfg(tmp_path, source="files", n_per_round=10, files=[{"path": str(path)}], evolve={"fraction": 0.5})
    assert problems.needs_policy(cfg.problems)
    with pytest.raises(ValueError, match="needs the policy"):
        run_problems(cfg, 1, tmp_path)
    monkeypatch.setattr(problems, "_policy_replies", lambda p, e, pr, d, msgs: [f"Anna has {i} pears. How many?" for i in range(len(msgs))])
    counts = run_problems(cfg, 1, tmp_path, policy_dir="policy")
    df = pd.read_parquet(tmp_path / "problems.parquet")
    assert counts["evolved"] == 5 and df.gold.isna().sum() == 5 and df.parent_id.notna().sum() == 5


def test_file_source_config_errors_name_the_field(tmp_path):
    from tasks.config import ConfigError
    bad = tmp_path / "c.yaml"
    bad.write_text("problems: {source: files}\n")
    with pytest.raises(ConfigError, match="needs at least one entry in problems.files"):
        load_config(bad)
    bad.write_text("problems: {source: files, files: [{path: x.jsonl, field_map: {q: prompt}}]}\n")
    with pytest.raises(ConfigError, match="problems.files.0.field_map"):
        load_config(bad)
