"""Ray: the shards of data-parallel stages and launched training jobs as Ray tasks.

    cluster: {backend: ray, address: auto, gpus_per_node: 8}      # configs/qwen2.5-math-7b.yaml

Each task runs one job's command (`python -m tasks.<stage> --spec ...`, or `accelerate launch`)
as a child process with the resources it reserves: `num_gpus` GPUs (Ray sets CUDA_VISIBLE_DEVICES)
and `cpus_per_shard` CPUs; `max_calls=1` gives every job a fresh worker, so a vLLM engine's memory
is returned when its shard ends. The run folder must be on storage every node sees.

Ray 2.60 turns token authentication on by default: a client of a `ray start` cluster needs
RAY_AUTH_MODE=token (set here unless the environment says otherwise) and the cluster's token
(~/.ray/auth_token, RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from tasks.config import Config

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent


def connect(cfg: Config):
    """ray, initialised: attached to cluster.address, or a Ray instance started for this process."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        # workers import flows/ and tasks/ from this checkout, whatever the cluster's working dir
        runtime_env = {"env_vars": {"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **cfg.cluster.env}}
        kwargs = {"address": cfg.cluster.address} if cfg.cluster.address else {"num_cpus": os.cpu_count()}
        ray.init(include_dashboard=False, log_to_driver=True, runtime_env=runtime_env, **kwargs)
        log.info("ray: %s", ray.cluster_resources())
    return ray


def _run_command_task(cmd: list[str], env: dict[str, str], cwd: str) -> None:
    from flows.launch import run_command
    os.chdir(cwd)
    run_command(cmd, env)


def _shard_task(stage: str, cfg: Config, shard_dir: str, shard_key: str, shard: tuple[int, int], args: dict,
                cwd: str) -> dict:
    from flows.launch import shard_job
    os.chdir(cwd)      # relative paths in the config mean what they meant where the run started
    return shard_job(stage, cfg, Path(shard_dir), shard_key, shard, args)


def run_remote(cmd: list[str], env: dict[str, str], cfg: Config, *, gpus: int, cpus: float) -> None:
    """One command in a Ray task holding `gpus` GPUs on one node; waits for it."""
    ray = connect(cfg)
    task = ray.remote(max_calls=1)(_run_command_task).options(num_gpus=gpus, num_cpus=cpus, max_retries=0)
    ray.get(task.remote(cmd, env, os.getcwd()))


def run_shards(stage: str, cfg: Config, shards: list[tuple[Path, str, tuple[int, int]]], args: dict) -> None:
    """Every shard as a Ray task at once (Ray queues what does not fit); waits for all of them and
    raises the first failure after the others finished (a finished shard is kept for the resume)."""
    from flows.launch import gpus_per_job

    if not shards:
        return
    ray = connect(cfg)
    task = ray.remote(max_calls=1)(_shard_task).options(num_gpus=gpus_per_job(stage, cfg),
                                                        num_cpus=cfg.cluster.cpus_per_shard, max_retries=0)
    refs = [task.remote(stage, cfg, str(d), key, shard, args, os.getcwd()) for d, key, shard in shards]
    errors = []
    for ref, (_, _, shard) in zip(refs, shards):
        try:
            ray.get(ref)
        except Exception as e:  # keep waiting for the others: their work is cached for a resume
            errors.append((shard, e))
    if errors:
        shard, e = errors[0]
        raise RuntimeError(f"{stage}: {len(errors)} of {len(shards)} shards failed; shard {shard[0]}: {e}") from e
