"""GRPO: the report's shaped reward, the reward function TRL calls, and a short real training run."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from tasks import world
from tasks.config import Config
from tasks.grpo import reward_function, shaped_reward


def test_shaped_reward_is_the_reports_formula():
    assert shaped_reward(True, 0.0) == 0.5 and shaped_reward(False, 0.0) == -0.5
    assert shaped_reward(True, 2.0) == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert shaped_reward(False, -4.0) == pytest.approx(1 / (1 + math.exp(2.0)) - 1)
    assert (shaped_reward(True, None), shaped_reward(False, None), shaped_reward(True, float("nan"))) == (1.0, 0.0, 1.0)
    # whatever the RM says, a wrong response never outscores a correct one
    assert max(shaped_reward(False, s) for s in (-1e9, 0.0, 50.0, 1e9)) < min(
        shaped_reward(True, s) for s in (-1e9, 0.0, 50.0, 1e9))


def test_reward_function_verifies_and_treats_a_full_budget_as_cut_off():
    cfg = Config.model_validate({"verify": {"workers": 0}})
    reward = reward_function(cfg.verify, cfg.score, cfg.max_length(), None, max_completion_tokens=5)
    completions = [r"12+34:2+4=6;1+3=4;\boxed{46}", r"\boxed{47}", "so 46", "so 46"]
    got = reward(prompts=["q"] * 4, completions=completions, gold=["46"] * 4,
                 completion_ids=[[1] * 9, [1] * 3, [1] * 3, [1] * 5])
    assert got == [1.0, 0.0, 1.0, 0.0]  # the last one used its whole budget: no last-number answer


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory):
    from tasks.bootstrap import build_tiny_model, train_tokenizer

    cfg = Config.model_validate({"bootstrap": {"tiny": {"hidden_size": 64, "num_layers": 1, "num_heads": 1,
                                                        "intermediate_size": 128, "max_len": 128, "vocab_size": 300}}})
    root = tmp_path_factory.mktemp("grpo")
    problems = world.make_problems(200, seed=4, ops=["add"], max_digits=2, zh_fraction=0.5)
    train_tokenizer([p["question"] for p in problems] + [world.solve_cot(p) for p in problems],
                    cfg.bootstrap.tiny.vocab_size, root / "tok")
    build_tiny_model(cfg.bootstrap.tiny, cfg.run.seed, root / "tok", root / "policy")
    pd.DataFrame(problems).assign(gold=[p["gold"] for p in problems]).to_parquet(root / "problems.parquet")
    return cfg, root


def test_run_grpo_trains_and_saves_a_loadable_policy(tiny_policy, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    import tasks.grpo
    # An untrained policy answers nothing right, so every group would have one reward and no
    # advantage to learn from; the verifier reward is tested above, here a length reward gives
    # the groups a spread, so the check is that GRPO's update reaches the saved weights.
    monkeypatch.setattr(tasks.grpo, "reward_function",
                        lambda *a: lambda completions, **kw: [float(len(c) % 7) for c in completions])
    cfg, root = tiny_policy
    cfg = cfg.model_copy(update={"grpo": cfg.grpo.model_copy(update={
        "n_problems": 16, "num_generations": 4, "batch_size": 8, "max_steps": 2, "max_tokens": 24, "lr": 1e-4}),
        "verify": cfg.verify.model_copy(update={"workers": 1})})
    counts = tasks.grpo.run(grpo=cfg.grpo, prompt=cfg.prompt, verify=cfg.verify, score=cfg.score,
                            max_length=cfg.max_length(), policy=root / "policy", rm=None,
                            problems=root / "problems.parquet", out_dir=tmp_path)
    assert counts["train_steps"] == 2 and counts["problems"] == 16 and counts["reward_last"] is not None
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    base = AutoModelForCausalLM.from_pretrained(root / "policy")
    changed = [n for (n, a), (_, b) in zip(tuned.named_parameters(), base.named_parameters()) if not a.equal(b)]
    assert changed  # the optimiser moved the weights
    assert (tmp_path / "model" / "tokenizer_config.json").exists() and not (tmp_path / "_trainer").exists()


def test_grpo_config_needs_whole_groups():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="multiple of num_generations"):
        Config.model_validate({"grpo": {"batch_size": 10, "num_generations": 4}})
