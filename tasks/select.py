"""The `select` stage (rejection sampling): keep verified-correct paths -> sft.parquet.

Per problem: correct responses only, identical ones deduplicated, at most `max_per_problem`.
Which correct paths are kept: the highest `rm_score` when the round has a reward model; without
one (round 1 starts from the bootstrap policy and no RM) a seeded random choice among them,
recorded in the counts as `chooser`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.config import DecontaminateConfig, SelectConfig


def run_select(cfg: SelectConfig, verified_path: Path, out_dir: Path, seed: int = 0,
               decontaminate: DecontaminateConfig | None = None) -> dict:
    df = pd.read_parquet(verified_path)
    correct = df[df.correct.fillna(False).astype(bool)]
    if cfg.dedupe:
        correct = correct.drop_duplicates(["problem_id", "response"])
    has_rm = "rm_score" in correct.columns and correct.rm_score.notna().any()
    order = correct.sort_values("rm_score", ascending=False) if has_rm else correct.sample(frac=1.0, random_state=seed)
    kept = order.groupby("problem_id", sort=False).head(cfg.max_per_problem)
    out = kept.rename(columns={"response": "completion"})[["problem_id", "prompt", "completion"]]
    out = out.sort_values(["problem_id"]).reset_index(drop=True)
    removed = {}
    if decontaminate is not None:  # the solutions too, not only the problems (the report's rule)
        from tasks.problems import decontaminate_frame
        out, removed = decontaminate_frame(out, decontaminate, ("completion",), out_dir)
    out.to_parquet(out_dir / "sft.parquet", index=False)
    return {**removed, "kept": len(out), "problems_with_correct": int(correct.problem_id.nunique()),
            "problems": int(df.problem_id.nunique()), "chooser": "rm" if has_rm else "random"}
