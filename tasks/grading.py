"""Verdicts for a frame of samples: extract each final answer and check it against the gold
(tasks/verify.py), with the report's fallback for problems without a gold answer: the majority
answer of their own samples stands in for the gold (`gold_source` "vote") when at least
`verify.vote_min_share` of the answered samples agree; otherwise their samples stay unverified
(correct null) and never become training data. Used by the `verify` and `reward-sample` stages.

With `verify.labels: vote` (the `no-verifier` ablation) every problem is labelled that way: the
gold is not looked at, so a sample is "correct" when it agrees with its problem's majority.
"""
from __future__ import annotations


import pandas as pd

from tasks.config import VerifyConfig


def verify_frame(cfg: VerifyConfig, samples: pd.DataFrame, gold: pd.Series) -> pd.DataFrame:
    """samples + answer, correct (nullable bool: null where there is no gold), status, gold_source."""
    from tasks.progress import StageProgress, chunks
    from tasks.verify import verify_batch

    if cfg.labels == "vote":
        golds = [None] * len(samples)
    else:
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
    if (cfg.vote or cfg.labels == "vote") and out.gold_source.isna().any():
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
