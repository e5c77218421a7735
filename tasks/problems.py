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

    python -m tasks.problems --spec spec.json
"""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from tasks import world as tiny_world
from tasks.common import stage_main
from tasks.config import DecontaminateConfig, EngineConfig, ProblemsConfig, PromptConfig, WorldConfig


def run(*, problems: ProblemsConfig, world: WorldConfig, decontaminate: DecontaminateConfig, round_k: int,
        n_test: int, test_seed: int, out_dir: Path, policy: Path | None = None, engine: EngineConfig | None = None,
        prompt: PromptConfig | None = None) -> dict:
    """The round's problem pool. `policy`, `engine` and `prompt` only when file problems are
    evolved by the policy (`needs_policy`): otherwise a new policy must not invalidate the pool."""
    from tasks.decontaminate import decontaminate_frame

    p, out_dir = problems, Path(out_dir)
    held_out = tiny_world.test_keys(world, n_test, test_seed)
    counts: dict = {}
    if p.source == "world":
        rows = tiny_world.make_problems(p.n_per_round, seed=p.seed + round_k, ops=list(world.ops),
                                        max_digits=world.max_digits, zh_fraction=world.zh_fraction,
                                        exclude=held_out, prefix=f"r{round_k}-")
        rows = [{**r, "source": "world"} for r in rows]
    else:
        rows, bad = file_problems(p, round_k)
        pd.DataFrame(bad, columns=["file", "line", "field", "reason"]).to_parquet(out_dir / "bad_rows.parquet", index=False)
        counts["bad_rows"] = len(bad)
    llm = (lambda msgs: _policy_replies(p, engine, prompt, str(policy), msgs)) if policy else None
    evolved = evolve(p, rows, round_k, held_out, llm)
    df = pd.DataFrame(rows + evolved)
    counts["evolved"] = len(evolved)
    df, removed = decontaminate_frame(df, decontaminate, ("question",), out_dir)
    df.to_parquet(out_dir / "problems.parquet", index=False)
    return {"problems": len(df), "zh": int((df.lang == "zh").sum()), "with_gold": int(df.gold.notna().sum()),
            **counts, **removed}


def file_problems(p: ProblemsConfig, round_k: int) -> tuple[list[dict], list[dict]]:
    """n_per_round problems drawn (seeded by round) from every file; ids become `<source>/<id>`."""
    from tasks.sources import read_problems

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


def needs_policy(problems: ProblemsConfig) -> bool:
    """Whether the problems stage runs the policy: evolution of file problems is model-written."""
    return problems.source == "files" and problems.evolve.fraction > 0


def evolve(p: ProblemsConfig, rows: list[dict], round_k: int, held_out: set, llm) -> list[dict]:
    from tasks.evolve import evolve_with_llm, evolve_world

    e = p.evolve
    n = round(e.fraction * len(rows))
    if n == 0:
        return []
    seed = e.seed + 7919 * round_k
    if p.source == "world":
        return [{**r, "source": "world-evolved"}
                for r in evolve_world(rows, n, seed=seed, kinds=list(e.kinds), exclude=held_out)]
    if llm is None:
        raise ValueError("problems.evolve on file problems needs the policy (model-written variants)")
    parents = random.Random(seed).choices(rows, k=n)
    return evolve_with_llm(llm, parents, kinds=list(e.kinds), seed=seed)


def _policy_replies(p: ProblemsConfig, engine: EngineConfig, prompt: PromptConfig, model_dir: str,
                    messages: list[str]) -> list[str]:
    """One sampled reply per user message from the policy, through the shared vLLM engine."""
    from tasks.engine import generate

    e = p.evolve
    if prompt.chat_template:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(model_dir)
        prompts = [tok.apply_chat_template([{"role": "user", "content": m}], tokenize=False, add_generation_prompt=True)
                   for m in messages]
    else:
        prompts = [m + "\n" for m in messages]
    outs = generate(model_dir, prompts, n=1, temperature=e.temperature, top_p=1.0, max_tokens=e.max_tokens,
                    seed=e.seed, stop=None, engine_cfg=engine)
    return [o[0]["response"] for o in outs]


if __name__ == "__main__":
    stage_main(run)
