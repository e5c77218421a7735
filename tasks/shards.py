"""Shards of a data-parallel stage (sample, reward-sample, verify, score, evaluate).

A shard (i, n) is the i-th of n contiguous slices of the problems, in the order they first appear
in the stage's input. Every sampled response draws from a seed derived from its problem id (see
`problem_seed`), never from its position, so a problem gets the same responses whichever shard
it lands in; concatenating the shards' files in shard order gives the unsharded file row for row.
"""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd


def bounds(n_items: int, shard: tuple[int, int]) -> tuple[int, int]:
    """[lo, hi) of shard i of n over n_items: sizes differ by at most one."""
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {shard}: want (i, n) with 0 <= i < n")
    return n_items * i // n, n_items * (i + 1) // n


def shard_rows(df: pd.DataFrame, shard: tuple[int, int]) -> pd.DataFrame:
    """The rows of shard `shard`, split by problem (`problem_id`, or `id` for a problems frame)."""
    if shard == (0, 1):
        return df.copy()
    column = "problem_id" if "problem_id" in df else "id"
    ids = pd.unique(df[column])
    lo, hi = bounds(len(ids), shard)
    return df[df[column].isin(set(ids[lo:hi]))].reset_index(drop=True)


def problem_seed(seed: int, key: str) -> int:
    """A sampling seed per (stage seed, problem): the same in every shard layout and on resume."""
    return random.Random(f"{seed}-{key}").getrandbits(31)


def concat_parts(parts: list[Path], name: str, out_dir: Path) -> int:
    """Concatenate `name` from each shard folder, in shard order, into out_dir; returns the rows."""
    frames = [pd.read_parquet(Path(p) / name) for p in parts if (Path(p) / name).exists()]
    frames = [f for f in frames if len(f)] or frames[:1]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.to_parquet(Path(out_dir) / name, index=False)
    return len(df)
