"""The `sample` stage: n solutions per problem from the policy with vLLM -> samples.parquet.

Columns: problem_id, sample_idx, mode, prompt, response, n_tokens, finish_reason.
`reward-sample` uses the same function with the reward section's n and temperature, then verifies.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.config import Config
from tasks.engine import generate
from tasks.prompts import build_prompts


def sample_frame(cfg: Config, model_dir: str, problems: pd.DataFrame, *, n: int, temperature: float,
                 max_tokens: int, seed: int) -> pd.DataFrame:
    prompts = build_prompts(list(problems.question), model_dir, cfg.prompt)
    outputs = generate(model_dir, prompts, n=n, temperature=temperature, top_p=cfg.sample.top_p,
                       max_tokens=max_tokens, seed=seed, stop=cfg.sample.stop, engine_cfg=cfg.engine)
    rows = [{"problem_id": pid, "sample_idx": i, "mode": "cot", "prompt": prompt, **c}
            for pid, prompt, completions in zip(problems.id, prompts, outputs)
            for i, c in enumerate(completions)]
    return pd.DataFrame(rows)


def run_sample(cfg: Config, model_dir: str, problems_path: Path, out_dir: Path) -> dict:
    s = cfg.sample
    df = sample_frame(cfg, model_dir, pd.read_parquet(problems_path), n=s.n, temperature=s.temperature,
                      max_tokens=s.max_tokens, seed=s.seed)
    df.to_parquet(out_dir / "samples.parquet", index=False)
    return {"samples": len(df), "mean_tokens": round(float(df.n_tokens.mean()), 1),
            "truncated": int((df.finish_reason == "length").sum())}


def run_reward_sample(cfg: Config, model_dir: str, problems_path: Path, out_dir: Path) -> dict:
    """Groups of `reward.n` verified samples per problem from the new policy (the RM's data)."""
    from tasks.verify_stage import verify_frame

    r = cfg.reward
    problems = pd.read_parquet(problems_path).head(r.n_problems)
    df = sample_frame(cfg, model_dir, problems, n=r.n, temperature=r.temperature, max_tokens=r.max_tokens,
                      seed=cfg.sample.seed + 1)
    df = verify_frame(cfg.verify, df, problems.set_index("id").gold)
    df.to_parquet(out_dir / "verified.parquet", index=False)
    per_problem = df.groupby("problem_id").correct.sum()
    return {"samples": len(df), "sample_acc": round(float(df.correct.fillna(False).mean()), 4),
            "mixed_groups": int(((per_problem > 0) & (per_problem < r.n)).sum())}
