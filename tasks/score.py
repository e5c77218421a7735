"""The `score` stage: the previous round's reward model scores every verified sample -> scored.parquet.

    python -m tasks.score --spec spec.json

`rm` None (round 1: the bootstrap has no RM, or the reward stage was skipped) writes a null
rm_score column, and select then chooses randomly among correct paths. Data-parallel: a shard
scores its slice of the problems (tasks/shards.py) and the merge recomputes the counts.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import ScoreConfig
from tasks.shards import shard_rows

OUTPUTS = ("scored.parquet",)


def run(*, score: ScoreConfig, max_length: int | None, rm: Path | None, verified: Path, out_dir: Path,
        shard: tuple[int, int] = (0, 1)) -> dict:
    df = shard_rows(pd.read_parquet(verified), shard)
    if rm is None or df.empty:
        df["rm_score"] = pd.array([None] * len(df), dtype="Float64")
    else:
        from tasks.progress import StageProgress
        from tasks.rm import score_texts
        with StageProgress("score: samples", len(df)) as progress:
            # score_texts counts distinct texts; the bar counts samples
            df["rm_score"] = score_texts(rm, list(df.prompt), list(df.response), batch_size=score.batch_size,
                                         max_length=max_length,
                                         on_progress=lambda done, total: progress.update(len(df) * done // total))
    df.to_parquet(Path(out_dir) / OUTPUTS[0], index=False)
    return finish(Path(out_dir))


def finish(out_dir: Path, **_) -> dict:
    """The counts of the (merged) output."""
    df = pd.read_parquet(out_dir / OUTPUTS[0])
    scored = int(df.rm_score.notna().sum())
    known = df[df.correct.notna() & df.rm_score.notna()]
    mean = lambda s: round(float(s.mean()), 4) if len(s) else None  # noqa: E731
    return {"samples": len(df), "scored": scored,
            "rm_score_correct": mean(known.rm_score[known.correct.astype(bool)]),
            "rm_score_wrong": mean(known.rm_score[~known.correct.astype(bool)])}


if __name__ == "__main__":
    stage_main(run)
