"""The `verify` stage: extract each sample's final answer and check it against the gold answer.

Writes verified.parquet (samples + answer, correct, status) and counts per status.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.config import VerifyConfig


def verify_frame(cfg: VerifyConfig, samples: pd.DataFrame, gold: pd.Series) -> pd.DataFrame:
    """samples + answer, correct (nullable bool: null where there is no gold), status."""
    from tasks.verify import verify_batch

    golds = [gold.get(pid) for pid in samples.problem_id]
    verdicts = verify_batch(list(samples.response), golds, timeout_s=cfg.timeout_s, workers=cfg.workers,
                            audit=cfg.audit)
    out = samples.copy()
    out["answer"] = [v.answer for v in verdicts]
    out["correct"] = pd.array([v.correct for v in verdicts], dtype="boolean")
    out["status"] = [v.status for v in verdicts]
    out["math_verify"] = pd.array([v.mv_correct for v in verdicts], dtype="boolean")
    return out


def run_verify(cfg: VerifyConfig, samples_path: Path, problems_path: Path, out_dir: Path) -> dict:
    gold = pd.read_parquet(problems_path, columns=["id", "gold"]).set_index("id").gold
    samples = verify_frame(cfg, pd.read_parquet(samples_path), gold)
    samples.to_parquet(out_dir / "verified.parquet", index=False)
    counts = samples.status.value_counts().to_dict()
    # Audit: the items where our verdict and plain math-verify's disagree, for a person to look at
    known = samples[samples.math_verify.notna() & samples.correct.notna()]
    disagree = known[known.correct.astype(bool) != known.math_verify.astype(bool)]
    disagree.to_parquet(out_dir / "audit.parquet", index=False)
    return {"samples": len(samples), **{k: int(v) for k, v in counts.items()},
            "sample_acc": round(float(samples.correct.fillna(False).mean()), 4),
            "mv_disagreements": len(disagree)}
