"""One self-improvement round as a Prefect flow; reads top to bottom like the recipe.

    problems -> sample -> verify -> score -> select -> sft -> reward-sample -> reward -> evaluate

Each stage writes runs/<run>/round-XX/NN-<stage>/ and returns a small StageResult (paths,
counts, digest) that Prefect caches by content. Config sections reach each stage by name
(flows/stages.py); what is passed here is what is not a whole section: inputs and scalars.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows import stages
from tasks.common import StageResult
from tasks.config import Config
from tasks.problems import needs_policy


@flow(name="improve-round", flow_run_name="round-{k:02d}", persist_result=True)
def improve_round(cfg: Config, k: int, run_dir: str, policy: StageResult, rm: StageResult | None,
                  bootstrap: StageResult, kept_before: list[StageResult], previous_eval: StageResult) -> dict:
    log = get_run_logger()
    rd = Path(run_dir) / f"round-{k:02d}"

    # 1. problems: this round's pool (world or files, plus evolved variants; eval sets excluded)
    problems = problem_pool(cfg, rd / "01-problems", k, policy)

    # 2. sample: n solutions per problem from the current policy (vLLM)
    samples = stages.run("sample", cfg, rd / "02-sample", policy=policy, problems=problems)
    if samples.counts.get("too_long"):
        log.warning("round %d: %d problems skipped: their prompt leaves no room for sample.max_tokens in the "
                    "model's context (listed in %s)", k, samples.counts["too_long"], Path(samples.dir) / "too_long.parquet")

    # 3. verify: extract final answers, compare with gold
    verified = stages.run("verify", cfg, rd / "03-verify", samples=samples, problems=problems)
    log.info("round %d: sample accuracy %.3f", k, verified.counts["sample_acc"])

    # 4. score: the previous round's reward model scores every sample (round 1 has no RM: the
    #    scores stay null and select chooses randomly among correct paths)
    scored = stages.run("score", cfg, rd / "04-score", max_length=cfg.max_length(), rm=rm, verified=verified)

    # 5. select: rejection sampling, correct paths only, the RM picks the best
    #    (without a reward model the choice is random whatever select.chooser says: one key for both)
    chooser = cfg.select if rm is not None else cfg.select.model_copy(update={"chooser": "rm"})
    kept = stages.run("select", cfg, rd / "05-select", select=chooser, seed=cfg.sample.seed + k, scored=scored)

    # 6. sft: fine-tune the policy (or the base, sft.from_base) on what was kept (and earlier rounds' kept data)
    corpus = stages.FileOf(bootstrap, "corpus.parquet") if "corpus" in bootstrap.counts else None
    new_policy = stages.run("sft", cfg, rd / "06-sft", max_length=cfg.max_length(),
                            policy=bootstrap if cfg.sft.from_base else policy, kept=[*kept_before, kept], corpus=corpus)

    # 7-8. reward: groups of 6 verified samples from the new policy train reward model k
    new_rm = rm
    if cfg.reward.enabled:
        r, s = cfg.reward, cfg.sample
        groups = stages.run("reward-sample", cfg, rd / "07-reward-sample", n=r.n, n_problems=r.n_problems,
                            temperature=r.temperature, max_tokens=r.max_tokens, top_p=s.top_p, stop=s.stop,
                            tir_fraction=s.tir_fraction, seed=s.seed + 1, policy=new_policy, problems=problems)
        new_rm = stages.run("reward", cfg, rd / "08-reward", max_length=cfg.max_length(), policy=new_policy,
                            groups=groups)
        log.info("round %d: RM pairwise accuracy %s", k, new_rm.counts.get("rm_pair_acc"))

    # 9. evaluate: greedy, maj@n, rm@n, pass@n on the held-out set
    evaluation = evaluate(cfg, rd / "09-evaluate", policy=new_policy, rm=new_rm, previous=previous_eval,
                          title=f"Round {k}")
    log.info("round %d: greedy %.3f", k, evaluation.counts["greedy"])

    return {"policy": new_policy, "rm": new_rm, "kept": kept, "evaluation": evaluation, "metrics": evaluation.counts,
            "rm_pair_acc": new_rm.counts.get("rm_pair_acc") if new_rm else None,
            "n_sft": new_policy.counts["n_sft"], "sample_acc": verified.counts["sample_acc"]}


def problem_pool(cfg: Config, out_dir: Path, k: int, policy: StageResult) -> StageResult:
    """The problems stage of round k. The policy (and the engine and prompt it is run with) is an
    input only when it writes the evolved problems: otherwise a new policy must not invalidate the pool."""
    evolver = dict(policy=policy) if needs_policy(cfg.problems) else dict(policy=None, engine=None, prompt=None)
    return stages.run("problems", cfg, out_dir, round_k=k, **held_out(cfg), **evolver,
                      key_extra=stages.problem_files_key(cfg))


def held_out(cfg: Config) -> dict:
    """The tiny world's held-out set, which every training source keeps out."""
    return {"n_test": cfg.evaluate.n_test, "test_seed": cfg.evaluate.seed}


def evaluate(cfg: Config, out_dir: Path, *, policy: StageResult, rm: StageResult | None,
             previous: StageResult | None, title: str) -> StageResult:
    """The evaluate stage as every round, round 0 and GRPO call it."""
    return stages.run("evaluate", cfg, out_dir, verify=gold_labels(cfg), stop=cfg.sample.stop,
                      max_length=cfg.max_length(), policy=policy, rm=rm, previous=previous, title=title)


def gold_labels(cfg: Config):
    """The verify section with gold labels: evaluation (and synthesized text) is always graded
    against the gold, whatever labels the round's training data (`verify.labels`)."""
    return cfg.verify.model_copy(update={"labels": "gold"})
