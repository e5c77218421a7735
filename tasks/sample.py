"""The `sample` stage: n solutions per problem from the policy with vLLM -> samples.parquet.

Columns: problem_id, sample_idx, mode, prompt, response, n_tokens, finish_reason, n_calls,
exec_errors. A problem is asked in CoT or, for a `sample.tir_fraction` share of problems (a
seeded choice per problem id), in TIR mode: the model's code runs in the sandbox (tasks/tir.py).
`reward-sample` uses the same function with the reward section's n and temperature, then verifies.
"""
from __future__ import annotations

import random
from pathlib import Path

import pandas as pd

from tasks.config import Config
from tasks.engine import generate
from tasks.prompts import build_prompts


def generate_in_mode(cfg: Config, model_dir: str, prompts: list[str], mode: str, *, n: int, temperature: float,
                     top_p: float, max_tokens: int, seed: int, pool=None) -> list[list[dict]]:
    """n completions per prompt: CoT straight from vLLM, TIR through the code-execution loop.
    Every record has n_calls and exec_errors (0 for CoT)."""
    common = dict(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                  stop=cfg.sample.stop, engine_cfg=cfg.engine)
    if not prompts:
        return []
    if mode == "cot":
        return [[{**c, "n_calls": 0, "exec_errors": 0} for c in outs] for outs in generate(model_dir, prompts, **common)]
    from tasks.sandbox import SandboxPool
    from tasks.tir import generate_tir

    t = cfg.tir
    own_pool = pool is None
    pool = SandboxPool(t.workers) if own_pool else pool
    try:
        return generate_tir(model_dir, prompts, max_calls=t.max_calls, timeout_s=t.timeout_s, memory_mb=t.memory_mb,
                            max_output_chars=t.max_output_chars, dedupe_calls=t.dedupe_calls, pool=pool, **common)
    finally:
        if own_pool:
            pool.close()


def problem_modes(problem_ids, tir_fraction: float, seed: int) -> list[str]:
    """A seeded mode per problem: "tir" for about tir_fraction of them, stable across runs."""
    if tir_fraction <= 0:
        return ["cot"] * len(problem_ids)
    return ["tir" if random.Random(f"mode-{seed}-{pid}").random() < tir_fraction else "cot" for pid in problem_ids]


def sample_frame(cfg: Config, model_dir: str, problems: pd.DataFrame, *, n: int, temperature: float,
                 max_tokens: int, seed: int, tir_fraction: float = 0.0, label: str = "sample") -> pd.DataFrame:
    from tasks.progress import StageProgress, chunks

    modes = problem_modes(list(problems.id), tir_fraction, seed)
    prompts = build_prompts(list(problems.question), model_dir, cfg.prompt, modes)
    outputs: list = [None] * len(prompts)
    pool = None
    if "tir" in modes:
        from tasks.sandbox import SandboxPool
        pool = SandboxPool(cfg.tir.workers)   # one pool for every TIR chunk of the stage
    try:
        with StageProgress(f"{label}: problems", len(prompts)) as progress:
            for mode in dict.fromkeys(modes):
                at = [i for i, m in enumerate(modes) if m == mode]
                # a few large chunks: progress moves, and vLLM's batches stay full (each chunk's
                # tail runs part-empty; chunks of 256 prompts cost ~30% of sampling speed here)
                for part in chunks(len(at), min_size=1000, parts=4):
                    idx = [at[j] for j in part]
                    outs = generate_in_mode(cfg, model_dir, [prompts[i] for i in idx], mode, n=n,
                                            temperature=temperature, top_p=cfg.sample.top_p,
                                            max_tokens=max_tokens, seed=seed, pool=pool)
                    for i, o in zip(idx, outs, strict=True):
                        outputs[i] = o
                    progress.advance(len(idx))
    finally:
        if pool is not None:
            pool.close()
    rows = [{"problem_id": pid, "sample_idx": i, "mode": mode, "prompt": prompt, **c}
            for pid, mode, prompt, completions in zip(problems.id, modes, prompts, outputs)
            for i, c in enumerate(completions)]
    return pd.DataFrame(rows)


def run_sample(cfg: Config, model_dir: str, problems_path: Path, out_dir: Path) -> dict:
    s = cfg.sample
    df = sample_frame(cfg, model_dir, pd.read_parquet(problems_path), n=s.n, temperature=s.temperature,
                      max_tokens=s.max_tokens, seed=s.seed, tir_fraction=s.tir_fraction)
    df.to_parquet(out_dir / "samples.parquet", index=False)
    return {"samples": len(df), "mean_tokens": round(float(df.n_tokens.mean()), 1),
            "truncated": int((df.finish_reason == "length").sum()),
            "tir_samples": int((df["mode"] == "tir").sum()), "code_calls": int(df.n_calls.sum()),
            "exec_errors": int(df.exec_errors.sum())}


def run_reward_sample(cfg: Config, model_dir: str, problems_path: Path, out_dir: Path) -> dict:
    """Groups of `reward.n` verified samples per problem from the new policy (the RM's data)."""
    from tasks.verify_stage import verify_frame

    r = cfg.reward
    problems = pd.read_parquet(problems_path).head(r.n_problems)
    df = sample_frame(cfg, model_dir, problems, n=r.n, temperature=r.temperature, max_tokens=r.max_tokens,
                      seed=cfg.sample.seed + 1, tir_fraction=cfg.sample.tir_fraction, label="reward-sample")
    df = verify_frame(cfg.verify, df, problems.set_index("id").gold)
    df.to_parquet(out_dir / "verified.parquet", index=False)
    per_problem = df.groupby("problem_id").correct.sum()
    return {"samples": len(df), "sample_acc": round(float(df.correct.fillna(False).mean()), 4),
            "mixed_groups": int(((per_problem > 0) & (per_problem < r.n)).sum())}
