"""Tool-integrated reasoning (TIR) sampling: the model writes Python, the sandbox runs it, the output
goes back into the text and the model continues; batched across all trajectories.

    from tasks.tir import generate_tir
    outs = generate_tir(model_dir, prompts, n=8, temperature=1.0, top_p=1.0, max_tokens=96, seed=0,
                        engine_cfg=cfg.engine, max_calls=3)
    outs[0][0]   # {"response", "n_tokens", "finish_reason", "n_calls", "exec_errors"}

The format is Qwen2.5-Math's (evaluation/math_eval.py), so its checkpoints see what they were
trained on, and the tiny world's `solve_tir` writes the same:

    ```python
    print(347 * 6)
    ```
    ```output
    2082
    ```
    \\boxed{2082}

The model writes a code block and then "```output"; that stop string ends the segment (vLLM leaves
it out of the text). A segment that, right-stripped, ends with a closed ```python block and has no
"boxed" in it is a call: the code runs in the sandbox, and the text goes on as
`segment.rstrip() + "\\n```output\\n" + output + "\\n```\\n"`. The output is the stdout, or the
error's last line when the code failed (stdout is then dropped, as in Qwen's executor), or "Done"
when it printed nothing; longer than max_output_chars, its middle is cut to "...".

Each trajectory is a code session: a call re-runs the trajectory's earlier cells first, output
discarded (tasks.sandbox's `setup`, what CodeSession does), so variables carry over. (Qwen's
math_eval runs only the last block; with one call per response, as in the tiny world, the two agree.)

The loop, one step per round of calls: every unfinished trajectory goes to vLLM in one
`llm.generate` call (n=1 each, after expanding the prompts n times, with a seed per trajectory
and step derived from `seed`); the calls of that step run concurrently through one SandboxPool;
the rest is finished. A trajectory ends with finish_reason
- "stop": the model stopped without a new call (EOS, or a stop string);
- "length": max_tokens model tokens in all (the output blocks do not count) or the context is full;
- "call_limit": it asked for a call after max_calls executions (that code is left unexecuted).
"""
from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass, field

from tasks.config import EngineConfig

log = logging.getLogger(__name__)

STOP = "```output"
MAX_OUTPUT_CHARS = 400           # Qwen2.5-Math's PythonExecutor.truncate
BLOCK = re.compile(r"```(python|output)[ \t]*\n(.*?)\n?```", re.S)


# ---------------------------------------------------------------- pure helpers (tested alone)

def split_response(text: str) -> list[tuple[str, str]]:
    """A response as (kind, body) pieces in order: "text", "python" (code) or "output" blocks.
    Only closed blocks count; an unclosed one stays part of the text. Empty text pieces are left out."""
    pieces, at = [], 0
    for m in BLOCK.finditer(text):
        if text[at:m.start()].strip():
            pieces.append(("text", text[at:m.start()]))
        pieces.append((m.group(1), m.group(2)))
        at = m.end()
    if text[at:].strip():
        pieces.append(("text", text[at:]))
    return pieces


def pending_code(segment: str) -> str | None:
    """The code to run when a generated segment ends with a closed ```python block (and gives no
    boxed answer, Qwen's rule); None when the segment is not a call."""
    text = segment.rstrip()
    if "boxed" in text or not text.endswith("```"):
        return None
    pieces = split_response(text)
    return pieces[-1][1] if pieces and pieces[-1][0] == "python" else None


def truncate_middle(text: str, max_chars: int = MAX_OUTPUT_CHARS) -> str:
    """Keep the head and the tail, as Qwen2.5-Math's executor does: s[:half] + "..." + s[-half:]."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return text[:half] + "..." + text[-half:]


def format_output(result, max_chars: int = MAX_OUTPUT_CHARS) -> str:
    """What the model sees of an ExecResult: the error line, else stdout, else "Done"."""
    text = result.error if result.error else (result.stdout.strip() or "Done")
    return truncate_middle(text.strip(), max_chars)


def with_output(response: str, output: str) -> str:
    """The response so far (ending in a code block) with the output block appended."""
    return f"{response.rstrip()}\n{STOP}\n{output}\n```\n"


def trajectory_seed(seed: int, index: int | str, step: int) -> int:
    """A sampling seed per (run seed, trajectory, step): reproducible, independent of batching.
    `index` is the trajectory's key: "<problem key>/<sample>" when problem keys are given."""
    return random.Random(f"tir-{seed}-{index}-{step}").getrandbits(31)


# ---------------------------------------------------------------- the loop

@dataclass
class _Trajectory:
    index: int | str
    prompt: str
    response: str = ""
    n_tokens: int = 0
    cells: list[str] = field(default_factory=list)
    exec_errors: int = 0
    pending: str | None = None
    finish_reason: str | None = None

    def record(self) -> dict:
        return {"response": self.response, "n_tokens": self.n_tokens, "finish_reason": self.finish_reason,
                "n_calls": len(self.cells), "exec_errors": self.exec_errors}


def generate_tir(model_dir, prompts: list[str], *, n: int, temperature: float, top_p: float,
                 max_tokens: int, seed: int, engine_cfg: EngineConfig, max_calls: int = 3,
                 timeout_s: float = 5.0, memory_mb: int = 512, pool=None,
                 max_output_chars: int = MAX_OUTPUT_CHARS, stop: list[str] | None = None,
                 dedupe_calls: bool = False, keys: list[str] | None = None) -> list[list[dict]]:
    """For each prompt, n TIR completions as dicts: response, n_tokens, finish_reason, n_calls,
    exec_errors. `pool`: a tasks.sandbox.SandboxPool to share; by default one is started here.
    `dedupe_calls`: within a step, identical (earlier cells, code) run once and share the result.
    `keys` (problem ids, one per prompt): seeds follow the problem, not its position (shards)."""
    from tasks.engine import get_engine
    from tasks.sandbox import SandboxPool

    if max_calls < 0:
        raise ValueError(f"max_calls must be >= 0 (0 = never run code), got {max_calls}")
    llm = get_engine(model_dir, engine_cfg)
    trajs = [_Trajectory(f"{keys[i]}/{j}" if keys is not None else i * n + j, p)
             for i, p in enumerate(prompts) for j in range(n)]
    own_pool = pool is None
    pool = SandboxPool() if own_pool else pool
    try:
        for step in range(max_calls + 1):
            active = [t for t in trajs if t.finish_reason is None]
            if not active:
                break
            started = time.monotonic()
            _generate_step(llm, active, step, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                           seed=seed, stop=[STOP, *(stop or [])], max_calls=max_calls)
            calls = [t for t in active if t.pending is not None]
            gen_s, started = time.monotonic() - started, time.monotonic()
            ran = _execute(pool, calls, timeout_s=timeout_s, memory_mb=memory_mb, max_output_chars=max_output_chars,
                           dedupe=dedupe_calls)
            log.info("tir step %d: %d trajectories generated in %.1f s, %d calls (%d executions) in %.1f s",
                     step, len(active), gen_s, len(calls), ran, time.monotonic() - started)
    finally:
        if own_pool:
            pool.close()
    return [[t.record() for t in trajs[i * n:(i + 1) * n]] for i in range(len(prompts))]


def _generate_step(llm, trajs: list[_Trajectory], step: int, *, temperature: float, top_p: float,
                   max_tokens: int, seed: int, stop: list[str], max_calls: int) -> None:
    """One segment for every trajectory; marks each as finished or as having code pending."""
    from vllm import SamplingParams

    tokenizer, context = llm.get_tokenizer(), llm.model_config.max_model_len
    batch, params = [], []
    for t in trajs:
        room = min(max_tokens - t.n_tokens, context - len(tokenizer.encode(t.prompt + t.response)))
        if room <= 0:
            t.finish_reason = "length"
            continue
        batch.append(t)
        params.append(SamplingParams(n=1, temperature=temperature, top_p=top_p, max_tokens=room,
                                     seed=trajectory_seed(seed, t.index, step), stop=stop))
    if not batch:
        return
    outputs = llm.generate([t.prompt + t.response for t in batch], params, use_tqdm=False)
    for t, out in zip(batch, outputs, strict=True):
        c = out.outputs[0]
        t.n_tokens += len(c.token_ids)
        t.response += c.text
        code = pending_code(c.text) if c.finish_reason == "stop" else None
        if code is None:
            t.finish_reason = c.finish_reason
        elif len(t.cells) >= max_calls:
            t.finish_reason = "call_limit"
        elif t.n_tokens >= max_tokens:
            t.finish_reason = "length"   # no tokens left to read the output with
        else:
            t.pending = code


def _execute(pool, trajs: list[_Trajectory], *, timeout_s: float, memory_mb: int, max_output_chars: int,
             dedupe: bool = False) -> int:
    """Run each trajectory's pending cell after its earlier ones, concurrently; append the outputs.
    With dedupe, identical sessions run once: n samples of one problem often write the same code
    (in the tiny world, mostly one or two distinct one-liners). Returns the number of executions."""
    if not trajs:
        return 0
    sessions = [(tuple(t.cells), t.pending) for t in trajs]
    unique = list(dict.fromkeys(sessions)) if dedupe else sessions
    results = pool.map([code for _, code in unique], setups=[list(cells) for cells, _ in unique],
                       timeout_s=timeout_s, memory_mb=memory_mb)
    if dedupe:
        by_session = dict(zip(unique, results, strict=True))
        results = [by_session[s] for s in sessions]
    for t, r in zip(trajs, results, strict=True):
        t.cells.append(t.pending)
        t.pending = None
        t.exec_errors += r.error is not None
        t.response = with_output(t.response, format_output(r, max_output_chars))
    return len(unique)
