"""Thin Prefect tasks around the stage entry points in tasks/, with content-based cache keys.

    stages.run("sample", cfg, rd / "02-sample", policy=policy, problems=problems)

Every stage module has one entry point, `run(*, <config sections>, <scalars>, <inputs>, out_dir)`.
`run` here fills the config sections by name from `cfg` (an argument named `sample` gets
`cfg.sample`), takes the rest from the call, and derives the cache key from exactly those
arguments: the config sections and scalars as they are, each input (a StageResult) by its content
digest, plus the code of the stage module and of every tasks module it imports. Never a path or a
flow-run id, so a resumed run finds its finished stages in Prefect's result store under the run
folder and shows them as Cached. A stage whose folder lost its manifest, or whose files no longer
match it, is recomputed even when the key is known; a cached record is always re-pointed at the
stage folder of the current run, so a copied or moved run reads its own files.
"""
from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass, replace
from pathlib import Path

from prefect import task
from prefect.context import TaskRunContext

from flows import launch
from tasks.common import StageResult, damaged_file, digest_json, finished, read_manifest
from tasks.config import Config

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
PLUMBING = {"config", "common", "progress"}   # how a stage runs, not what it computes

# The file or folder a stage's result stands for when a later stage takes it as an input.
OUTPUTS = {"bootstrap": "model", "problems": "problems.parquet", "sample": "samples.parquet",
           "verify": "verified.parquet", "score": "scored.parquet", "select": "sft.parquet", "sft": "model",
           "reward-sample": "verified.parquet", "reward": "model", "evaluate": ".", "grpo": "model",
           "synthesize": "synthesized.parquet", "pretrain": "model"}


# ---------------------------------------------------------------------------------------------
# Arguments and keys

def stage_args(stage: str, cfg: Config, given: dict) -> dict:
    """The entry point's arguments: config sections by name from cfg, everything else from `given`."""
    params = inspect.signature(launch.module(stage).run).parameters
    unknown = set(given) - set(params)
    if unknown:
        raise TypeError(f"stage {stage}: no argument(s) {sorted(unknown)}")
    args = {}
    for name, param in params.items():
        if name in ("out_dir", "shard"):
            continue
        if name in given:
            args[name] = given[name]
        elif name in Config.model_fields:
            args[name] = getattr(cfg, name)
        elif param.default is inspect.Parameter.empty:
            raise TypeError(f"stage {stage}: argument {name!r} not given")
    return args


@dataclass
class FileOf:
    """One file of a finished stage as an input (the bootstrap's corpus); keyed by the stage's digest."""
    result: StageResult
    name: str


def _key_value(value):
    if isinstance(value, StageResult):
        return value.digest
    if isinstance(value, FileOf):
        return [value.result.digest, value.name]
    if isinstance(value, (list, tuple)):
        return [_key_value(v) for v in value]
    if hasattr(value, "result_fields"):
        return value.result_fields()
    return str(value) if isinstance(value, Path) else value


def stage_key(stage: str, args: dict, extra: dict | None = None) -> str:
    """The content key of a stage run: its code and exactly the arguments it is called with."""
    return digest_json({"stage": stage, "code": code_digest(stage),
                        "args": {k: _key_value(v) for k, v in sorted(args.items())}, "extra": extra or {}})


def _imports(name: str) -> set[str]:
    """tasks modules that tasks/<name>.py imports anywhere (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse((TASKS_DIR / f"{name}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "tasks":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tasks."):
            found.add(node.module.split(".")[1])
    return found - PLUMBING


def stage_modules(stage: str) -> list[str]:
    """The stage's module and every tasks module it reaches through imports: an edit anywhere in
    there invalidates the stage."""
    seen, todo = set(), [launch.MODULES[stage].split(".")[1]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += _imports(name)
    return sorted(seen)


def code_digest(stage: str) -> str:
    return digest_json({m: (TASKS_DIR / f"{m}.py").read_bytes().hex() for m in stage_modules(stage)})


# ---------------------------------------------------------------------------------------------
# Inputs: StageResults in the flow, paths in the stage

def output_path(result: StageResult | None) -> Path | None:
    """The file or folder a finished stage hands on (None: no reward model this round)."""
    if result is None or "skipped" in result.counts and result.stage == "reward":
        return None
    if external := result.counts.get("external_model"):
        return Path(external)
    return Path(result.dir) / OUTPUTS[result.stage]


def _as_paths(value):
    if isinstance(value, StageResult):
        return output_path(value)
    if isinstance(value, FileOf):
        return Path(value.result.dir) / value.name
    if isinstance(value, list):
        return [_as_paths(v) for v in value]
    return value


def _prefect_progress(description: str):
    """A Prefect progress artifact on the running task, moved by StageProgress."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    artifact = create_progress_artifact(progress=0.0, description=description)

    def sink(done: int, total: int) -> None:
        update_progress_artifact(artifact, progress=round(100 * done / max(total, 1), 1),
                                 description=f"{description}: {done}/{total}")
    return sink


def _cache_key(context: TaskRunContext, parameters: dict) -> str:
    return parameters["key"]


def _stage_task(name: str):
    @task(name=name, cache_key_fn=_cache_key, persist_result=True)
    def stage_task(cfg: Config, out_dir: str, args: dict, key: str) -> StageResult:
        from tasks.progress import reporting

        inputs = {k: _key_value(v) for k, v in args.items() if isinstance(v, (StageResult, FileOf, list))}
        with reporting(_prefect_progress):
            return launch.execute(name, cfg, out_dir, {k: _as_paths(v) for k, v in args.items()}, key, inputs)
    return stage_task


TASKS = {name: _stage_task(name) for name in launch.MODULES}


def run(stage: str, cfg: Config, out_dir: str | Path, *, key_extra: dict | None = None, **given) -> StageResult:
    """Run (or take from cache) one stage into out_dir; returns its record, pointing at out_dir."""
    args = stage_args(stage, cfg, given)
    key = stage_key(stage, args, key_extra)
    out_dir = str(out_dir)
    manifest = read_manifest(Path(out_dir))
    if manifest is None:
        return _into_fresh_folder(stage, cfg, out_dir, args, key)
    damaged = damaged_file(Path(out_dir), manifest) if manifest.get("key") == key else None
    if damaged:
        _logger().warning("%s: damaged (%s); the stage is recomputed, and what depends on it if its output changes",
                          out_dir, damaged)
    stale = manifest.get("key") != key or damaged is not None
    result = TASKS[stage].with_options(refresh_cache=stale)(cfg, out_dir, args, key)
    return replace(result, dir=out_dir)


def _into_fresh_folder(stage: str, cfg: Config, out_dir: str, args: dict, key: str) -> StageResult:
    """A folder with no finished stage: when the store already holds this key (the same work done
    by another run sharing the store: an ablation's variants and seeds), the finished folder is
    hard-linked here (Prefect shows the task Cached); otherwise, or when that folder is gone or
    damaged, the stage runs."""
    result = TASKS[stage].with_options(refresh_cache=False)(cfg, out_dir, args, key)
    source = Path(result.dir)
    if source.resolve() != Path(out_dir).resolve() and finished(source, key):
        link_stage(source, Path(out_dir))
        _logger().info("%s: the same stage finished in %s; linked, not recomputed", out_dir, source)
    elif not finished(Path(out_dir), key):    # a record whose folder is gone: recompute
        result = TASKS[stage].with_options(refresh_cache=True)(cfg, out_dir, args, key)
    return replace(result, dir=out_dir)


def link_stage(source: Path, target: Path) -> None:
    """A finished stage folder at `target` sharing `source`'s files (hard links: no copy of a 7B
    checkpoint; finished stage files are never written again). Copies where links cannot be made
    (another file system). Built under a temporary name, renamed last."""
    import os
    import shutil

    tmp = target.with_name(target.name + f".tmp-link-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for path in sorted(source.rglob("*")):
        dest = tmp / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, dest)
        except OSError:
            shutil.copy2(path, dest)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def import_records(store: Path, runs: list[Path]) -> int:
    """Copy the stage records of other runs' result stores (a run folder, or an ablation folder
    whose runs share one store) into `store` (`--cache-from`): a stage
    of this run whose key one of them finished is then hard-linked from that run's folder instead
    of recomputed. Only records named by a cache key (64 hex digits) are copied; returns how many."""
    import re
    import shutil

    copied = 0
    store.mkdir(parents=True, exist_ok=True)
    for run_dir in runs:
        source = Path(run_dir) / ".prefect-results"
        if not source.is_dir():
            raise FileNotFoundError(f"--cache-from {run_dir}: no result store ({source} is missing)")
        for record in source.iterdir():
            if re.fullmatch(r"[0-9a-f]{64}", record.name) and not (store / record.name).exists():
                shutil.copy2(record, store / record.name)
                copied += 1
    return copied


def _logger():
    from flows.launch import _logger as launch_logger
    return launch_logger()


def problem_files_key(cfg: Config) -> dict:
    """The content of the problem files (their paths are in the config; their rows are not)."""
    from tasks.common import sha256_file

    if cfg.problems.source != "files":
        return {}
    return {"files": [sha256_file(Path(f.path)) if Path(f.path).exists() else f"missing:{f.path}"
                      for f in cfg.problems.files]}
