"""Paired comparisons of evaluations on the same held-out problems, with bootstrap intervals.

    from tasks.compare import compare
    compare(["runs/tiny/round-02/09-evaluate"], ["runs/tiny/round-03/09-evaluate"], metric="greedy")
    # {"a": 0.778, "b": 0.760, "diff": -0.018, "lo": -0.046, "hi": 0.010, "problems": 500, ...}

Each evaluation writes per_problem.parquet: per problem and mode, whether greedy / maj / rm /
rm_maj / pass got it right. Two evaluations of the same problems are compared per problem (paired),
so the interval is much tighter than two independent standard errors: the percentile bootstrap
over problems of the mean difference (Efron & Tibshirani; what Qwen2.5-Math's and most eval
harnesses' significance checks do), with a fixed seed so a report is reproducible. Several seeds
of one configuration are pooled per problem (the mean over seeds) before resampling, so the
interval covers problem sampling, and the seeds' noise enters through the pooled means.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

METRICS = {"greedy": "greedy", "maj": "maj", "rm": "rm", "rm_maj": "rm_maj", "pass": "pass"}


def paired_bootstrap(a, b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Mean of b - a over paired items, with the percentile-bootstrap interval of that mean."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_bootstrap: need two 1-d arrays of one length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("paired_bootstrap: no paired items")
    diff = b - a
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_boot, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return {"a": round(float(a.mean()), 4), "b": round(float(b.mean()), 4), "diff": round(float(diff.mean()), 4),
            "lo": round(float(lo), 4), "hi": round(float(hi), 4), "problems": int(len(diff))}


def verdicts(eval_dir: str | Path, metric: str, mode: str = "cot") -> pd.Series:
    """Per problem id: 1.0 / 0.0 under `metric` (greedy, maj, rm, rm_maj, pass) in `mode`."""
    path = Path(eval_dir) / "per_problem.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no per-problem verdicts (an evaluation from before they were written?)")
    df = pd.read_parquet(path)
    df = df[df["mode"] == mode]
    if metric not in df.columns or df.empty:
        raise KeyError(f"{path}: no {metric!r} verdicts in mode {mode} (columns: {sorted(df.columns)})")
    return df.set_index("id")[metric].astype(float)


def pooled(eval_dirs: list[str | Path], metric: str, mode: str = "cot") -> pd.Series:
    """The mean verdict per problem over several evaluations (seeds of one configuration)."""
    frames = [verdicts(d, metric, mode) for d in eval_dirs]
    return pd.concat(frames, axis=1, join="inner").mean(axis=1)


def compare(a_dirs: list[str | Path], b_dirs: list[str | Path], metric: str = "greedy", mode: str = "cot",
            metric_b: str | None = None, n_boot: int = 2000, seed: int = 0) -> dict:
    """b - a on the problems both were evaluated on (metric_b: compare two metrics of one
    evaluation, e.g. rm against maj)."""
    a = pooled(a_dirs, metric, mode)
    b = pooled(b_dirs, metric_b or metric, mode)
    a, b = a.align(b, join="inner")
    return {**paired_bootstrap(a.to_numpy(), b.to_numpy(), n_boot=n_boot, seed=seed),
            "metric": metric if not metric_b else f"{metric_b} - {metric}", "mode": mode,
            "seeds": [len(a_dirs), len(b_dirs)]}


def interval(c: dict) -> str:
    """'+0.032 [+0.010, +0.054]' for a report cell."""
    return f"{c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}]"


def verdict(c: dict) -> str:
    """Whether the interval excludes zero, in words."""
    if c["lo"] > 0:
        return "higher"
    if c["hi"] < 0:
        return "lower"
    return "no clear difference"
