"""The `problems` stage: a round's problem pool, written to problems.parquet.

Columns: id, source, lang, question, gold (string or null), plus world-specific ones (op, a, b,
carry) when the source is the tiny world. The held-out test set is excluded.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks import world
from tasks.bootstrap import test_keys
from tasks.config import Config


def run_problems(cfg: Config, round_k: int, out_dir: Path) -> dict:
    w, p = cfg.world, cfg.problems
    rows = world.make_problems(p.n_per_round, seed=p.seed + round_k, ops=list(w.ops),
                               max_digits=w.max_digits, zh_fraction=w.zh_fraction,
                               exclude=test_keys(cfg), prefix=f"r{round_k}-")
    df = pd.DataFrame(rows).assign(source="world")
    df.to_parquet(out_dir / "problems.parquet", index=False)
    return {"problems": len(df), "zh": int((df.lang == "zh").sum())}
