"""One self-improvement round as a Prefect flow; reads top to bottom like the recipe.

    problems -> sample -> verify -> score -> select -> sft -> reward-sample -> reward -> evaluate

Each stage writes runs/<run>/round-XX/NN-<stage>/ and returns a small StageResult (paths,
counts, digest) that Prefect caches by content.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows import stages
from tasks.common import StageResult
from tasks.config import Config


@flow(name="improve-round", flow_run_name="round-{k:02d}", persist_result=True)
def improve_round(cfg: Config, k: int, run_dir: str, policy: StageResult, rm: StageResult | None,
                  bootstrap: StageResult, kept_before: list[StageResult], previous_eval: StageResult) -> dict:
    log = get_run_logger()
    rd = Path(run_dir) / f"round-{k:02d}"

    # 1. problems: this round's pool (world or files, plus evolved variants; eval sets excluded)
    problems = stages.problems(cfg, str(rd / "01-problems"), stages.problems_inputs(cfg, k, policy))

    # 2. sample: n solutions per problem from the current policy (vLLM)
    samples = stages.sample(cfg, str(rd / "02-sample"), {"policy": policy, "problems": problems})

    # 3. verify: extract final answers, compare with gold
    verified = stages.verify(cfg, str(rd / "03-verify"), {"samples": samples, "problems": problems})
    log.info("round %d: sample accuracy %.3f", k, verified.counts["sample_acc"])

    # 4. score: the previous round's reward model scores every sample (round 1 has no RM: the
    #    scores stay null and select chooses randomly among correct paths)
    scored = stages.score(cfg, str(rd / "04-score"), {"verified": verified, "rm": rm})

    # 5. select: rejection sampling, correct paths only, the RM picks the best
    kept = stages.select(cfg, str(rd / "05-select"), {"scored": scored, "round": k})

    # 6. sft: fine-tune the policy on what was kept (and earlier rounds' kept data)
    new_policy = stages.sft(cfg, str(rd / "06-sft"),
                            {"policy": policy, "kept": [*kept_before, kept], "bootstrap": bootstrap})

    # 7-8. reward: groups of 6 verified samples from the new policy train reward model k
    new_rm = rm
    if cfg.reward.enabled:
        groups = stages.reward_sample(cfg, str(rd / "07-reward-sample"), {"policy": new_policy, "problems": problems})
        new_rm = stages.reward(cfg, str(rd / "08-reward"), {"policy": new_policy, "groups": groups})
        log.info("round %d: RM pairwise accuracy %s", k, new_rm.counts.get("rm_pair_acc"))

    # 9. evaluate: greedy, maj@n, rm@n, pass@n on the held-out set
    evaluation = stages.evaluate(cfg, str(rd / "09-evaluate"), {"policy": new_policy, "rm": new_rm,
                                 "previous": previous_eval, "title": f"Round {k}"})
    log.info("round %d: greedy %.3f", k, evaluation.counts["greedy"])

    return {"policy": new_policy, "rm": new_rm, "kept": kept, "evaluation": evaluation, "metrics": evaluation.counts,
            "rm_pair_acc": new_rm.counts.get("rm_pair_acc") if new_rm else None,
            "n_sft": new_policy.counts["n_sft"], "sample_acc": verified.counts["sample_acc"]}
