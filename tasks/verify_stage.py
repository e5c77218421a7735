"""The `verify` stage: extract each sample's final answer and check it against the gold answer.

Problems without a gold answer (files with no answer, evolved problems) get the report's
fallback: the majority answer of their own samples stands in for the gold (`gold_source` "vote"),
when at least `verify.vote_min_share` of the answered samples agree; otherwise their samples stay
unverified (correct null) and never become training data.

Writes verified.parquet (samples + answer, correct, status, gold_source) and counts per status.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.config import VerifyConfig


def verify_frame(cfg: VerifyConfig, samples: pd.DataFrame, gold: pd.Series) -> pd.DataFrame:
    """samples + answer, correct (nullable bool: null where there is no gold), status, gold_source."""
    from tasks.progress import StageProgress, chunks
    from tasks.verify import verify_batch

    golds = [None if pd.isna(g := gold.get(pid)) else g for pid in samples.problem_id]
    responses, verdicts = list(samples.response), []
    truncated = list(_truncated(samples))
    with StageProgress("verify: samples", len(responses)) as progress:
        for part in chunks(len(responses), min_size=2000):
            verdicts += verify_batch(responses[part.start:part.stop], golds[part.start:part.stop],
                                     timeout_s=cfg.timeout_s, workers=cfg.workers, audit=cfg.audit,
                                     truncated=truncated[part.start:part.stop])
            progress.advance(len(part))
    out = samples.copy()
    out["answer"] = [v.answer for v in verdicts]
    out["correct"] = pd.array([v.correct for v in verdicts], dtype="boolean")
    out["status"] = [v.status for v in verdicts]
    out["math_verify"] = pd.array([v.mv_correct for v in verdicts], dtype="boolean")
    out["gold_source"] = pd.array(["gold" if g is not None else None for g in golds], dtype="string")
    if cfg.vote and out.gold_source.isna().any():
        _verify_by_vote(cfg, out)
    return out


def _truncated(samples: pd.DataFrame) -> pd.Series:
    """Responses cut off at their token limit (no last-number fallback for them, see extract_answer)."""
    if "finish_reason" not in samples:
        return pd.Series(False, index=samples.index)
    return samples.finish_reason == "length"


def _verify_by_vote(cfg: VerifyConfig, out: pd.DataFrame) -> None:
    """For each problem without gold: vote, then verify its samples against the voted answer (in place)."""
    from tasks.verify import majority_vote, verify_batch

    no_gold = out.gold_source.isna()
    voted = {pid: majority_vote(list(group.answer), timeout_s=cfg.timeout_s, workers=cfg.workers)
             for pid, group in out[no_gold].groupby("problem_id", sort=False)}
    rows = no_gold & out.problem_id.map(voted).notna()
    if not rows.any():
        return
    verdicts = verify_batch(list(out.response[rows]), list(out.problem_id[rows].map(voted)),
                            timeout_s=cfg.timeout_s, workers=cfg.workers, truncated=list(_truncated(out[rows])))
    out.loc[rows, "correct"] = [bool(v.correct) for v in verdicts]
    out.loc[rows, "status"] = ["vote_" + v.status for v in verdicts]
    answered = out[rows & out.answer.notna()]
    share = answered.groupby("problem_id").correct.mean()
    agreed = out.problem_id.map(share).fillna(0) >= cfg.vote_min_share
    out.loc[rows & agreed, "gold_source"] = "vote"
    out.loc[rows & ~agreed, "correct"] = pd.NA   # no consensus: the vote is not trusted
    out.loc[rows & ~agreed, "status"] = "no_consensus"


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
