"""GRPO after the last round, as a Prefect flow named `rl` (runs when `grpo.enabled`).

    problems -> grpo -> evaluate

A fresh problem pool (the round after the last one, decontaminated like every round's), GRPO from
the last policy with the last reward model (tasks/grpo.py), then the same evaluation as a round.
Writes runs/<run>/rl/NN-<stage>/.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows import stages
from flows.round import evaluate, problem_pool
from tasks.common import StageResult
from tasks.config import Config


@flow(name="rl", flow_run_name="rl", persist_result=True)
def rl(cfg: Config, run_dir: str, policy: StageResult, rm: StageResult | None, previous_eval: StageResult) -> dict:
    log = get_run_logger()
    rd = Path(run_dir) / "rl"

    # 1. problems: RL queries, a pool no round has seen
    problems = problem_pool(cfg, rd / "01-problems", cfg.run.rounds + 1, policy)

    # 2. grpo: the shaped reward sigmoid(0.5 * r_rm) + (r_verifier - 1)
    tuned = stages.run("grpo", cfg, rd / "02-grpo", max_length=cfg.max_length(), policy=policy, rm=rm,
                       problems=problems)
    log.info("grpo: mean reward %s -> %s", tuned.counts.get("reward_first"), tuned.counts.get("reward_last"))

    # 3. evaluate: the same held-out set and metrics as every round
    evaluation = evaluate(cfg, rd / "09-evaluate", policy=tuned, rm=rm, previous=previous_eval, title="GRPO")
    log.info("grpo: greedy %.3f", evaluation.counts["greedy"])
    return {"policy": tuned, "evaluation": evaluation, "metrics": evaluation.counts}
