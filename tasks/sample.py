"""The `sample` stage: n solutions per problem from the policy with vLLM -> samples.parquet.

    python -m tasks.sample --spec spec.json

Columns: problem_id, sample_idx, mode, prompt, response, n_tokens, finish_reason, n_calls,
exec_errors. A problem is asked in CoT or, for a `sample.tir_fraction` share of problems (a
seeded choice per problem id), in TIR mode: the model's code runs in the sandbox (tasks/tir.py).
Data-parallel: a shard samples its slice of the problems (tasks/shards.py).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import EngineConfig, PromptConfig, SampleConfig, TirConfig
from tasks.generation import sample_frame
from tasks.shards import shard_rows

OUTPUTS = ("samples.parquet", "too_long.parquet")


def run(*, sample: SampleConfig, engine: EngineConfig, prompt: PromptConfig, tir: TirConfig, policy: Path,
        problems: Path, out_dir: Path, shard: tuple[int, int] = (0, 1)) -> dict:
    s = sample
    df, too_long = sample_frame(engine, prompt, tir, str(policy), shard_rows(pd.read_parquet(problems), shard), n=s.n,
                      temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed, stop=s.stop,
                      tir_fraction=s.tir_fraction)
    df.to_parquet(Path(out_dir) / OUTPUTS[0], index=False)
    too_long.to_parquet(Path(out_dir) / "too_long.parquet", index=False)
    return finish(Path(out_dir))


def finish(out_dir: Path, **_) -> dict:
    """The counts of the (merged) output."""
    df = pd.read_parquet(out_dir / OUTPUTS[0])
    return {"samples": len(df), "too_long": len(pd.read_parquet(out_dir / "too_long.parquet")), "mean_tokens": round(float(df.n_tokens.mean()), 1) if len(df) else 0.0,
            "truncated": int((df.finish_reason == "length").sum()),
            "tir_samples": int((df["mode"] == "tir").sum()), "code_calls": int(df.n_calls.sum()),
            "exec_errors": int(df.exec_errors.sum())}


if __name__ == "__main__":
    stage_main(run)
