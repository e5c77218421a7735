"""The `reward` stage: reward model k, trained from policy k on its verified groups (tasks/rm.py).

    python -m tasks.reward --spec spec.json        # or: accelerate launch ... -m tasks.reward --spec ...

Without any group of 1..n-1 positives there is nothing to learn: no model is written and the
counts say `skipped` (the round then scores nothing and select chooses randomly).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import RewardConfig


def run(*, reward: RewardConfig, max_length: int | None, policy: Path, groups: Path, out_dir: Path) -> dict:
    """Train an RM from `policy` on the verified groups in `groups` -> out_dir/model."""
    from tasks.rm import train_reward_model

    df = pd.read_parquet(groups)
    known = df[df.correct.notna()].groupby("problem_id").correct.agg(["sum", "count"])
    all_correct, all_wrong = int((known["sum"] == known["count"]).sum()), int((known["sum"] == 0).sum())
    counts = {"samples": len(df), "problems": int(df.problem_id.nunique()),
              "groups_all_correct": all_correct, "groups_all_wrong": all_wrong}
    if len(known) - all_correct - all_wrong == 0:
        return {**counts, "skipped": "no group with 1..n-1 correct responses; no RM this round"}
    return {**counts, **train_reward_model(policy, df, Path(out_dir) / "model", reward, max_length)}


if __name__ == "__main__":
    stage_main(run)
