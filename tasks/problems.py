"""The `problems` stage: a round's problem pool, decontaminated, written to problems.parquet.

Columns: id, source, lang, question, gold (string or null: the verify stage's vote decides), plus
world-specific ones (op, a, b, carry) for the tiny world, and parent_id / evolution for evolved
problems. Sources (`problems.source`): the tiny world, or problem files (JSONL / Parquet, with a
field map); bad file rows are listed in bad_rows.parquet with file, line, field and reason (or
fail the stage, `problems.on_bad: error`). `problems.evolve` adds variants of the round's problems
(tasks/evolve.py): programmatic for the world, written by the policy through vLLM for files.

The held-out test set is excluded by construction; every eval set in `decontaminate.eval_sets` is
excluded by the 13-gram + LCS rule, and each removed problem is listed in contaminated.parquet
with the eval item it matched.
"""
from __future__ import annotations

import random
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


def run_problems(cfg: Config, round_k: int, out_dir: Path, policy_dir: str | None = None) -> dict:
    p = cfg.problems
    counts: dict = {}
    if p.source == "world":
        w = cfg.world
        rows = world.make_problems(p.n_per_round, seed=p.seed + round_k, ops=list(w.ops),
                                   max_digits=w.max_digits, zh_fraction=w.zh_fraction,
                                   exclude=test_keys(cfg), prefix=f"r{round_k}-")
        rows = [{**r, "source": "world"} for r in rows]
    else:
        rows, bad = file_problems(cfg, round_k)
        pd.DataFrame(bad, columns=["file", "line", "field", "reason"]).to_parquet(out_dir / "bad_rows.parquet", index=False)
        counts["bad_rows"] = len(bad)
    evolved = evolve(cfg, rows, round_k, policy_dir)
    df = pd.DataFrame(rows + evolved)
    counts["evolved"] = len(evolved)
    df, removed = decontaminate_frame(df, cfg.decontaminate, ("question",), out_dir)
    df.to_parquet(out_dir / "problems.parquet", index=False)
    return {"problems": len(df), "zh": int((df.lang == "zh").sum()), "with_gold": int(df.gold.notna().sum()),
            **counts, **removed}


def file_problems(cfg: Config, round_k: int) -> tuple[list[dict], list[dict]]:
    """n_per_round problems drawn (seeded by round) from every file; ids become `<source>/<id>`."""
    from tasks.sources import read_problems

    p = cfg.problems
    rows, bad = [], []
    for f in p.files:
        if not Path(f.path).exists():
            raise FileNotFoundError(f"problems.files: {f.path} not found")
        got, bad_here = read_problems(f.path, field_map=dict(f.field_map), on_bad=p.on_bad)
        rows += [{**r, "id": f"{r['source']}/{r['id']}"} for r in got]
        bad += bad_here
    dupes = pd.Series([r["id"] for r in rows]).duplicated()
    if dupes.any():
        raise ValueError(f"problems.files: duplicate ids, e.g. {rows[int(dupes.idxmax())]['id']!r} "
                         "(two files with the same name? give each its own id field)")
    if len(rows) > p.n_per_round:
        rows = random.Random(p.seed + round_k).sample(rows, p.n_per_round)
    return rows, bad


def needs_policy(cfg: Config) -> bool:
    """Whether the problems stage runs the policy: evolution of file problems is model-written."""
    return cfg.problems.source == "files" and cfg.problems.evolve.fraction > 0


def evolve(cfg: Config, rows: list[dict], round_k: int, policy_dir: str | None) -> list[dict]:
    from tasks.evolve import evolve_with_llm, evolve_world

    e = cfg.problems.evolve
    n = round(e.fraction * len(rows))
    if n == 0:
        return []
    seed = e.seed + 7919 * round_k
    if cfg.problems.source == "world":
        return [{**r, "source": "world-evolved"}
                for r in evolve_world(rows, n, seed=seed, kinds=list(e.kinds), exclude=test_keys(cfg))]
    if policy_dir is None:
        raise ValueError("problems.evolve on file problems needs the policy (model-written variants)")
    parents = random.Random(seed).choices(rows, k=n)
    return evolve_with_llm(lambda msgs: _policy_replies(cfg, policy_dir, msgs), parents, kinds=list(e.kinds), seed=seed)


def _policy_replies(cfg: Config, model_dir: str, messages: list[str]) -> list[str]:
    """One sampled reply per user message from the policy, through the shared vLLM engine."""
    from tasks.engine import generate

    e = cfg.problems.evolve
    if cfg.prompt.chat_template:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(model_dir)
        prompts = [tok.apply_chat_template([{"role": "user", "content": m}], tokenize=False, add_generation_prompt=True)
                   for m in messages]
    else:
        prompts = [m + "\n" for m in messages]
    outs = generate(model_dir, prompts, n=1, temperature=e.temperature, top_p=1.0, max_tokens=e.max_tokens,
                    seed=e.seed, stop=None, engine_cfg=cfg.engine)
    return [o[0]["response"] for o in outs]
