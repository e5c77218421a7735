"""The `select` stage (rejection sampling): keep verified-correct paths -> sft.parquet.

    python -m tasks.select --spec spec.json

Per problem: correct responses only, identical ones deduplicated, at most `max_per_problem`.
Which correct paths are kept: the highest `rm_score` when the round has a reward model; without
one (round 1 starts from the bootstrap policy and no RM), or with `select.chooser: random` (the
`random-select` ablation), a seeded random choice among them, recorded in the counts as `chooser`. The kept solutions are decontaminated too (the report's rule).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import DecontaminateConfig, SelectConfig


def run(*, select: SelectConfig, decontaminate: DecontaminateConfig, seed: int, scored: Path, out_dir: Path) -> dict:
    from tasks.decontaminate import decontaminate_frame

    df = pd.read_parquet(scored)
    correct = df[df.correct.fillna(False).astype(bool)]
    if select.dedupe:
        correct = correct.drop_duplicates(["problem_id", "response"])
    has_rm = select.chooser == "rm" and "rm_score" in correct.columns and correct.rm_score.notna().any()
    order = correct.sort_values("rm_score", ascending=False) if has_rm else correct.sample(frac=1.0, random_state=seed)
    kept = order.groupby("problem_id", sort=False).head(select.max_per_problem)
    out = kept.rename(columns={"response": "completion"})[["problem_id", "prompt", "completion"]]
    out = out.sort_values(["problem_id"]).reset_index(drop=True)
    out, removed = decontaminate_frame(out, decontaminate, ("completion",), Path(out_dir))
    out.to_parquet(Path(out_dir) / "sft.parquet", index=False)
    return {**removed, "kept": len(out), "problems_with_correct": int(correct.problem_id.nunique()),
            "problems": int(df.problem_id.nunique()), "chooser": "rm" if has_rm else "random"}


if __name__ == "__main__":
    stage_main(run)
