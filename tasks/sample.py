"""The `sample` stage: n solutions per problem from the policy with vLLM -> samples.parquet.

Columns: problem_id, sample_idx, mode, prompt, response, n_tokens, finish_reason.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.config import Config
from tasks.engine import generate
from tasks.prompts import build_prompts


def run_sample(cfg: Config, model_dir: str, problems_path: Path, out_dir: Path) -> dict:
    problems = pd.read_parquet(problems_path)
    s = cfg.sample
    prompts = build_prompts(list(problems.question), model_dir, cfg.prompt)
    outputs = generate(model_dir, prompts, n=s.n, temperature=s.temperature, top_p=s.top_p,
                       max_tokens=s.max_tokens, seed=s.seed, stop=s.stop, engine_cfg=cfg.engine)
    rows = [{"problem_id": pid, "sample_idx": i, "mode": "cot", "prompt": prompt, **c}
            for pid, prompt, completions in zip(problems.id, prompts, outputs)
            for i, c in enumerate(completions)]
    df = pd.DataFrame(rows)
    df.to_parquet(out_dir / "samples.parquet", index=False)
    return {"samples": len(df), "mean_tokens": round(float(df.n_tokens.mean()), 1),
            "truncated": int((df.finish_reason == "length").sum())}
