"""The `grpo` stage: reinforcement learning from the last round's policy with TRL's GRPOTrainer.

    python -m tasks.grpo --spec spec.json            # or under accelerate launch (flows/launch.py)

The report's shaped reward for a response with verifier verdict r_v (1 correct, 0 not) and reward
model score r_rm:

    r = sigmoid(0.5 * r_rm) + (r_v - 1)

so every wrong response scores below every correct one (r in [-1, 0) vs [0, 1)), and the RM orders
responses within each side. Without a reward model (reward stage skipped or disabled) r = r_v.
GRPO normalises rewards within each group of `grpo.num_generations` responses to one prompt.

Generation runs through TRL (transformers `generate`), CoT only; problems without a gold answer
are left out (no verifier reward). On GPUs, set `grpo.use_vllm` to let TRL generate with vLLM.
"""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from tasks.common import check_checkpoint, stage_main
from tasks.config import GrpoConfig, PromptConfig, ScoreConfig, VerifyConfig


def shaped_reward(correct: bool, rm_score: float | None) -> float:
    """sigmoid(0.5 * r_rm) + (r_v - 1); just r_v without an RM score."""
    r_v = 1.0 if correct else 0.0
    if rm_score is None or rm_score != rm_score:
        return r_v
    return 1.0 / (1.0 + math.exp(-0.5 * max(min(rm_score, 100.0), -100.0))) + (r_v - 1.0)


def reward_function(verify: VerifyConfig, score: ScoreConfig, max_length: int | None, rm_dir: str | None,
                    max_completion_tokens: int) -> Callable[..., list[float]]:
    """The GRPO reward: our verifier (process pool, hard time limit) plus, with an RM, its score.

    TRL calls it with the batch's prompts and completions and the dataset's other columns (`gold`).
    The RM is loaded once here and kept for the whole training run.
    """
    from tasks.verify import verify_batch

    scorer = None
    if rm_dir:
        from tasks.rm import encode, load_rm, score_ids
        model, tokenizer = load_rm(rm_dir)

        def scorer(prompts: list[str], completions: list[str]) -> list[float]:
            seqs = encode(tokenizer, prompts, completions, max_length)
            return score_ids(model, seqs, model.config.pad_token_id, score.batch_size)

    def reward(prompts: list[str], completions: list[str], gold: list[str], completion_ids=None, **_) -> list[float]:
        # a completion that used its whole token budget was cut off (no EOS): no last-number answer
        truncated = [len(ids) >= max_completion_tokens for ids in completion_ids] if completion_ids else None
        verdicts = verify_batch(list(completions), list(gold), timeout_s=verify.timeout_s,
                                workers=verify.workers, truncated=truncated)
        scores = scorer(list(prompts), list(completions)) if scorer else [None] * len(completions)
        return [shaped_reward(bool(v.correct), s) for v, s in zip(verdicts, scores, strict=True)]

    return reward


def run(*, grpo: GrpoConfig, prompt: PromptConfig, verify: VerifyConfig, score: ScoreConfig,
        max_length: int | None, policy: Path, rm: Path | None, problems: Path, out_dir: Path) -> dict:
    """Train the policy with GRPO on the problems' prompts -> out_dir/model."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from tasks.prompts import build_prompts
    from tasks.training import check_distributed, finish_checkpoint, per_device_batch, progress_callback, world_size

    g, policy_dir, rm_dir = grpo, str(policy), str(rm) if rm else None
    check_checkpoint(policy_dir)
    problems = pd.read_parquet(problems)
    problems = problems[problems.gold.notna()].head(g.n_problems)
    if problems.empty:
        raise ValueError("grpo: no problem with a gold answer (the verifier reward needs one)")
    prompts = build_prompts(list(problems.question), policy_dir, prompt, "cot")
    dataset = Dataset.from_dict({"prompt": prompts, "gold": [str(x) for x in problems.gold]})
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    tokenizer.padding_side = "left"  # generation pads on the left
    torch.manual_seed(g.seed)
    args = GRPOConfig(
        output_dir=str(Path(out_dir) / "_trainer"), learning_rate=g.lr, max_steps=g.max_steps,
        per_device_train_batch_size=per_device_batch(g.batch_size, "grpo"), num_generations=g.num_generations,
        max_completion_length=g.max_tokens, temperature=g.temperature, beta=g.beta, bf16=g.bf16,
        gradient_checkpointing=False, use_vllm=g.use_vllm, seed=g.seed, data_seed=g.seed,
        logging_steps=max(1, g.max_steps // 10), save_strategy="no", report_to=[], lr_scheduler_type="constant",
        warmup_steps=0, dataloader_num_workers=0, deepspeed=g.deepspeed, use_cpu=not torch.cuda.is_available(),
    )
    reward = reward_function(verify, score, max_length, rm_dir, g.max_tokens)
    trainer = GRPOTrainer(model=policy_dir, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[progress_callback("grpo: steps")])
    check_distributed(trainer.accelerator, g.deepspeed, "grpo")
    started = time.time()
    result = trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    model_dir = Path(out_dir) / "model"
    trainer.save_model(str(model_dir))
    if trainer.is_world_process_zero():
        tokenizer.padding_side = "right"
        tokenizer.save_pretrained(str(model_dir))
        finish_checkpoint(Path(policy_dir), model_dir)
        shutil.rmtree(Path(out_dir) / "_trainer", ignore_errors=True)
    return {"problems": len(problems), "with_rm": rm_dir is not None, "train_processes": world_size(),
            "train_steps": int(result.global_step),
            "train_s": round(time.time() - started, 1),
            "reward_first": round(rewards[0], 4) if rewards else None,
            "reward_last": round(rewards[-1], 4) if rewards else None}


if __name__ == "__main__":
    stage_main(run)
