"""The `problems` stage: a round's problem pool, decontaminated, written to problems.parquet.

Columns: id, source, lang, question, gold (string or null), plus world-specific ones (op, a, b,
carry) when the source is the tiny world. The held-out test set is excluded by construction;
every eval set in `decontaminate.eval_sets` is excluded by the 13-gram + LCS rule, and each removed
problem is listed in contaminated.parquet with the eval item it matched.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from tasks import world
from tasks.bootstrap import test_keys
from tasks.config import Config, DecontaminateConfig


@lru_cache(maxsize=2)
def eval_index(specs: tuple[str, ...], n: int):
    """The n-gram index over the eval sets, built once per process."""
    from tasks.decontaminate import NgramIndex
    missing = [s for s in specs if not Path(s).exists()]
    if missing:
        raise FileNotFoundError(f"decontaminate.eval_sets: not found: {', '.join(missing)}")
    return NgramIndex.from_specs(list(specs), n)


def decontaminate_frame(df: pd.DataFrame, cfg: DecontaminateConfig, text_fields: tuple[str, ...],
                        out_dir: Path) -> tuple[pd.DataFrame, dict]:
    """Drop rows matching an eval item; write contaminated.parquet; counts per eval set."""
    if not cfg.enabled or not cfg.eval_sets or df.empty:
        return df, {"contaminated": 0}
    from tasks.decontaminate import decontaminate_rows
    rows = df.to_dict("records")
    kept, pairs = decontaminate_rows(rows, eval_index(tuple(cfg.eval_sets), cfg.ngram), cfg, text_fields)
    pd.DataFrame(pairs, columns=["item_id", "eval_set", "eval_id", "ngram", "lcs_ratio"]).to_parquet(
        out_dir / "contaminated.parquet", index=False)
    removed = {p["item_id"] for p in pairs}
    per_set = pd.Series([p["eval_set"] for p in pairs], dtype=str).value_counts().to_dict()
    return pd.DataFrame(kept, columns=df.columns), {"contaminated": len(removed),
                                                    **{f"contaminated_{k}": int(v) for k, v in per_set.items()}}


def run_problems(cfg: Config, round_k: int, out_dir: Path) -> dict:
    w, p = cfg.world, cfg.problems
    rows = world.make_problems(p.n_per_round, seed=p.seed + round_k, ops=list(w.ops),
                               max_digits=w.max_digits, zh_fraction=w.zh_fraction,
                               exclude=test_keys(cfg), prefix=f"r{round_k}-")
    df = pd.DataFrame(rows).assign(source="world")
    df, removed = decontaminate_frame(df, cfg.decontaminate, ("question",), out_dir)
    df.to_parquet(out_dir / "problems.parquet", index=False)
    return {"problems": len(df), "zh": int((df.lang == "zh").sum()), **removed}
