"""The `verify` stage: each sample's final answer against its problem's gold -> verified.parquet.

    python -m tasks.verify_stage --spec spec.json

Writes verified.parquet (samples + answer, correct, status, gold_source; tasks/grading.py) and
audit.parquet: the samples where our verdict and plain math-verify's disagree, for a person to
look at. Data-parallel: a shard verifies its slice of the problems (votes are per problem).
(The module is `verify_stage` because `tasks.verify` is the verifier library itself.)
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import VerifyConfig
from tasks.grading import verify_frame
from tasks.shards import shard_rows

OUTPUTS = ("verified.parquet", "audit.parquet")


def run(*, verify: VerifyConfig, samples: Path, problems: Path, out_dir: Path, shard: tuple[int, int] = (0, 1)) -> dict:
    gold = pd.read_parquet(problems, columns=["id", "gold"]).set_index("id").gold
    verified = verify_frame(verify, shard_rows(pd.read_parquet(samples), shard), gold)
    verified.to_parquet(Path(out_dir) / "verified.parquet", index=False)
    known = verified[verified.math_verify.notna() & verified.correct.notna()]
    disagree = known[known.correct.astype(bool) != known.math_verify.astype(bool)]
    disagree.to_parquet(Path(out_dir) / "audit.parquet", index=False)
    return finish(Path(out_dir))


def finish(out_dir: Path, **_) -> dict:
    """The counts of the (merged) output."""
    verified = pd.read_parquet(out_dir / "verified.parquet")
    statuses = verified.status.value_counts().to_dict()
    return {"samples": len(verified), **{k: int(v) for k, v in statuses.items()},
            "sample_acc": round(float(verified.correct.fillna(False).mean()), 4) if len(verified) else 0.0,
            "mv_disagreements": len(pd.read_parquet(out_dir / "audit.parquet"))}


if __name__ == "__main__":
    stage_main(run)
