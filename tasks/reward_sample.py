"""The `reward-sample` stage: groups of `reward.n` verified samples per problem from the new policy,
the reward model's training data -> verified.parquet.

    python -m tasks.reward_sample --spec spec.json

Its sampling settings are passed in one by one (n, n_problems, temperature and max_tokens from the
`reward` section; top_p, stop, the TIR share and the seed + 1 from `sample`), so the stage's cache
key holds only what it reads (not, say, the RM's learning rate). Data-parallel like `sample`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import EngineConfig, PromptConfig, TirConfig, VerifyConfig
from tasks.generation import sample_frame
from tasks.grading import verify_frame
from tasks.shards import shard_rows

OUTPUTS = ("verified.parquet", "too_long.parquet")


def run(*, engine: EngineConfig, prompt: PromptConfig, tir: TirConfig, verify: VerifyConfig, n: int, n_problems: int,
        temperature: float, max_tokens: int, top_p: float, stop: list[str], tir_fraction: float, seed: int,
        policy: Path, problems: Path, out_dir: Path, shard: tuple[int, int] = (0, 1)) -> dict:
    pool = shard_rows(pd.read_parquet(problems).head(n_problems), shard)
    df, too_long = sample_frame(engine, prompt, tir, str(policy), pool, n=n, temperature=temperature, top_p=top_p,
                      max_tokens=max_tokens, seed=seed, stop=stop, tir_fraction=tir_fraction, label="reward-sample")
    df = verify_frame(verify, df, pool.set_index("id").gold)
    df.to_parquet(Path(out_dir) / OUTPUTS[0], index=False)
    too_long.to_parquet(Path(out_dir) / "too_long.parquet", index=False)
    return finish(Path(out_dir))


def finish(out_dir: Path, **_) -> dict:
    """The counts of the (merged) output."""
    df = pd.read_parquet(out_dir / OUTPUTS[0])
    per_problem = df.groupby("problem_id").correct.agg(["sum", "count"])
    return {"samples": len(df), "too_long": len(pd.read_parquet(out_dir / "too_long.parquet")), "sample_acc": round(float(df.correct.fillna(False).mean()), 4) if len(df) else 0.0,
            "mixed_groups": int(((per_problem["sum"] > 0) & (per_problem["sum"] < per_problem["count"])).sum())}


if __name__ == "__main__":
    stage_main(run)
