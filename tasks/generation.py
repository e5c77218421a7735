"""Generation shared by the sampling stages (sample, reward-sample, evaluate, problems' evolution):
CoT straight from vLLM, TIR through the code-execution loop (tasks/tir.py).

    from tasks.generation import sample_frame
    df = sample_frame(sample_cfg_like, engine, prompt, tir, model_dir, problems, n=8, temperature=1.0, ...)

Seeds follow the problem id (`keys`), so the same problem gets the same responses in any shard.
"""
from __future__ import annotations

import random

import pandas as pd

from tasks.config import EngineConfig, PromptConfig, TirConfig
from tasks.engine import generate
from tasks.prompts import build_prompts


def generate_in_mode(engine: EngineConfig, tir: TirConfig, model_dir: str, prompts: list[str], mode: str, *,
                     n: int, temperature: float, top_p: float, max_tokens: int, seed: int, stop: list[str],
                     keys: list[str] | None = None, pool=None) -> list[list[dict]]:
    """n completions per prompt: CoT straight from vLLM, TIR through the code-execution loop.
    Every record has n_calls and exec_errors (0 for CoT)."""
    common = dict(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                  stop=stop, engine_cfg=engine, keys=keys)
    if not prompts:
        return []
    if mode == "cot":
        return [[{**c, "n_calls": 0, "exec_errors": 0} for c in outs] for outs in generate(model_dir, prompts, **common)]
    from tasks.sandbox import SandboxPool
    from tasks.tir import generate_tir

    own_pool = pool is None
    pool = SandboxPool(tir.workers) if own_pool else pool
    try:
        return generate_tir(model_dir, prompts, max_calls=tir.max_calls, timeout_s=tir.timeout_s, memory_mb=tir.memory_mb,
                            max_output_chars=tir.max_output_chars, dedupe_calls=tir.dedupe_calls, pool=pool, **common)
    finally:
        if own_pool:
            pool.close()


def problem_modes(problem_ids, tir_fraction: float, seed: int) -> list[str]:
    """A seeded mode per problem: "tir" for about tir_fraction of them, stable across runs."""
    if tir_fraction <= 0:
        return ["cot"] * len(problem_ids)
    return ["tir" if random.Random(f"mode-{seed}-{pid}").random() < tir_fraction else "cot" for pid in problem_ids]


def fitting_problems(engine: EngineConfig, prompt: PromptConfig, model_dir: str, problems: pd.DataFrame,
                     max_tokens: int, tir_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(problems whose prompt leaves max_tokens of room in the model's context, the others with
    their prompt's token count): the rule evaluate uses too, so an over-long problem is skipped
    and listed, never sent to vLLM (which would fail the whole stage)."""
    from tasks.prompts import prompt_budget, prompts_that_fit

    budget = prompt_budget(model_dir, max_tokens, engine.max_model_len)
    prompts = build_prompts(list(problems.question), model_dir, prompt, problem_modes(list(problems.id), tir_fraction, seed))
    fits = prompts_that_fit(prompts, model_dir, budget)
    skipped = pd.DataFrame({"problem_id": [str(i) for i, f in zip(problems.id, fits) if not f],
                            "prompt_chars": [len(p) for p, f in zip(prompts, fits) if not f],
                            "max_prompt_tokens": budget})
    return problems[fits].reset_index(drop=True), skipped


def sample_frame(engine: EngineConfig, prompt: PromptConfig, tir: TirConfig, model_dir: str, problems: pd.DataFrame, *,
                 n: int, temperature: float, top_p: float, max_tokens: int, seed: int, stop: list[str],
                 tir_fraction: float = 0.0, label: str = "sample") -> tuple[pd.DataFrame, pd.DataFrame]:
    """n responses per problem, one row each: problem_id, sample_idx, mode, prompt, response,
    n_tokens, finish_reason, n_calls, exec_errors; and the problems skipped as too long."""
    from tasks.progress import StageProgress, chunks

    problems, too_long = fitting_problems(engine, prompt, model_dir, problems, max_tokens, tir_fraction, seed)
    modes = problem_modes(list(problems.id), tir_fraction, seed)
    prompts = build_prompts(list(problems.question), model_dir, prompt, modes)
    ids = [str(i) for i in problems.id]
    outputs: list = [None] * len(prompts)
    pool = None
    if "tir" in modes:
        from tasks.sandbox import SandboxPool
        pool = SandboxPool(tir.workers)   # one pool for every TIR chunk of the stage
    try:
        with StageProgress(f"{label}: problems", len(prompts)) as progress:
            for mode in dict.fromkeys(modes):
                at = [i for i, m in enumerate(modes) if m == mode]
                # a few large chunks: progress moves, and vLLM's batches stay full (each chunk's
                # tail runs part-empty; chunks of 256 prompts cost ~30% of sampling speed here)
                for part in chunks(len(at), min_size=1000, parts=4):
                    idx = [at[j] for j in part]
                    outs = generate_in_mode(engine, tir, model_dir, [prompts[i] for i in idx], mode, n=n,
                                            temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed,
                                            stop=stop, keys=[ids[i] for i in idx], pool=pool)
                    for i, o in zip(idx, outs, strict=True):
                        outputs[i] = o
                    progress.advance(len(idx))
    finally:
        if pool is not None:
            pool.close()
    rows = [{"problem_id": pid, "sample_idx": i, "mode": mode, "prompt": text, **c}
            for pid, mode, text, completions in zip(problems.id, modes, prompts, outputs)
            for i, c in enumerate(completions)]
    return pd.DataFrame(rows, columns=None if rows else ["problem_id", "sample_idx", "mode", "prompt", "response",
                                                         "n_tokens", "finish_reason", "n_calls", "exec_errors"]), too_long
