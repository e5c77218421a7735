"""Thin Prefect tasks around the stage functions in tasks/, with content-based cache keys.

A stage's cache key = hash(stage name, the source of the modules it runs, the config sections it
reads, the digests of its inputs). Never a path or a flow-run id: a resumed run (same run folder)
finds its finished stages in Prefect's result store under the run folder and shows them as
Cached. A stage whose folder has lost its manifest is recomputed even when the key is known.
"""
from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.context import TaskRunContext

from tasks.common import StageResult, digest_json, read_manifest, run_stage
from tasks.config import Config

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"

# What each stage's result depends on: its code, and the config sections it reads.
# Code: the stage's entry module and every tasks module it imports, directly or through another
# (stage_modules); config.py and common.py are plumbing, not stage logic.
STAGE_CODE = {
    "bootstrap": ["bootstrap"],
    "problems": ["problems"],
    "sample": ["sample"],
    "verify": ["verify_stage"],
    "score": ["reward"],
    "select": ["select"],
    "sft": ["sft"],
    "reward-sample": ["sample"],
    "reward": ["reward"],
    "evaluate": ["evaluate"],
    "grpo": ["grpo"],
}
STAGE_CONFIG = {
    "bootstrap": ["run.seed", "world", "bootstrap", "prompt", "evaluate"],
    "problems": ["world", "problems", "evaluate", "decontaminate"],
    "sample": ["sample", "engine", "prompt", "tir"],
    "verify": ["verify"],
    "score": ["score", "bootstrap.tiny.max_len"],
    "select": ["select", "decontaminate"],
    "sft": ["sft", "prompt", "bootstrap.tiny.max_len"],
    "reward-sample": ["reward", "engine", "prompt", "tir", "verify", "sample.stop", "sample.top_p", "sample.seed",
                      "sample.tir_fraction"],
    "reward": ["reward", "bootstrap.tiny.max_len"],
    "evaluate": ["evaluate", "engine", "prompt", "tir", "verify", "score", "sample.stop"],
    "grpo": ["grpo", "prompt", "verify", "score", "bootstrap.tiny.max_len"],
}


def _config_part(cfg: Config, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node.model_dump(mode="json") if hasattr(node, "model_dump") else node


def _tasks_imports(module: str) -> set[str]:
    """tasks modules that `module` imports anywhere (function-level imports too)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse((TASKS_DIR / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "tasks":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tasks."):
            found.add(node.module.split(".")[1])
    return found - {"config", "common"}


def stage_modules(stage: str) -> list[str]:
    """The stage's entry modules and everything they import from tasks/, transitively: an edit
    anywhere in there invalidates the stage (more often than strictly needed, never less)."""
    seen, todo = set(), list(STAGE_CODE[stage])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += _tasks_imports(m)
    return sorted(seen)


def _code_digest(stage: str) -> str:
    files = [TASKS_DIR / f"{m}.py" for m in stage_modules(stage)]
    return digest_json({f.name: f.read_bytes().hex() for f in files})


def stage_key(stage: str, cfg: Config, inputs: dict) -> str:
    """The content key of a stage run; `inputs` holds digests and small scalars."""
    sections = {name: _config_part(cfg, name) for name in STAGE_CONFIG[stage]}
    return digest_json({"stage": stage, "code": _code_digest(stage), "config": sections, "inputs": inputs})


def input_digests(inputs: dict) -> dict:
    """StageResults by their digest (lists of them too); scalars as they are."""
    def one(v):
        if isinstance(v, StageResult):
            return v.digest
        if isinstance(v, (list, tuple)):
            return [one(x) for x in v]
        return v
    return {k: one(v) for k, v in inputs.items()}


def _cache_key(context: TaskRunContext, parameters: dict) -> str:
    return stage_key(context.task.name, parameters["cfg"], input_digests(parameters.get("inputs", {})))


def stage_task(name: str):
    """Decorator: a Prefect task named like the stage, cached by content, result persisted.

    The returned callable checks the stage folder first: when its manifest is missing or was
    written for another key (files deleted, a killed attempt), the cached record is refreshed,
    so Prefect never returns a result whose files are gone.
    """
    def wrap(fn):
        prefect_task = task(name=name, cache_key_fn=_cache_key, persist_result=True)(fn)

        def call(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
            manifest = read_manifest(Path(out_dir))
            stale = manifest is None or manifest.get("key") != stage_key(name, cfg, input_digests(inputs))
            return prefect_task.with_options(refresh_cache=stale)(cfg, out_dir, inputs)

        call.task = prefect_task
        return call
    return wrap


def run(stage: str, cfg: Config, out_dir: str, inputs: dict, body) -> StageResult:
    """Compute the key and run `body(tmp_dir)` atomically into out_dir (see tasks.common.run_stage)."""
    digests = input_digests(inputs)
    return run_stage(Path(out_dir), stage, stage_key(stage, cfg, digests), digests, body)


# ---- the stages ------------------------------------------------------------------------------

@stage_task("bootstrap")
def bootstrap(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.bootstrap import run_bootstrap
    return run("bootstrap", cfg, out_dir, inputs, lambda d: run_bootstrap(cfg, d))


@stage_task("problems")
def problems(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.problems import run_problems
    policy = inputs.get("policy")
    return run("problems", cfg, out_dir, inputs,
               lambda d: run_problems(cfg, inputs["round"], d, model_path(policy) if policy else None))


def problems_inputs(cfg: Config, k: int, policy: StageResult) -> dict:
    """The problems stage's inputs: the round, the content of its files, and the policy only when
    it writes evolved problems (otherwise a new policy must not invalidate the round's problems)."""
    from tasks.common import sha256_file
    from tasks.problems import needs_policy

    inputs: dict = {"round": k}
    if cfg.problems.source == "files":
        inputs["files"] = [sha256_file(Path(f.path)) if Path(f.path).exists() else f"missing:{f.path}"
                           for f in cfg.problems.files]
    if needs_policy(cfg):
        inputs["policy"] = policy
    return inputs


@stage_task("sample")
def sample(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.sample import run_sample
    model, probs = inputs["policy"], inputs["problems"]
    return run("sample", cfg, out_dir, inputs,
               lambda d: run_sample(cfg, model_path(model), probs.path("problems.parquet"), d))


@stage_task("verify")
def verify(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.verify_stage import run_verify
    samples, probs = inputs["samples"], inputs["problems"]
    return run("verify", cfg, out_dir, inputs,
               lambda d: run_verify(cfg.verify, samples.path("samples.parquet"), probs.path("problems.parquet"), d))


@stage_task("score")
def score(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.reward import run_score
    verified, rm = inputs["verified"], inputs["rm"]
    return run("score", cfg, out_dir, inputs,
               lambda d: run_score(cfg, rm_path(rm), verified.path("verified.parquet"), d))


@stage_task("select")
def select(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.select import run_select
    scored = inputs["scored"]
    return run("select", cfg, out_dir, inputs,
               lambda d: run_select(cfg.select, scored.path("scored.parquet"), d, seed=inputs["round"],
                                    decontaminate=cfg.decontaminate))


@stage_task("sft")
def sft(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.sft import run_sft
    base, kept = inputs["policy"], inputs["kept"]
    corpus = inputs["bootstrap"].path("corpus.parquet")
    return run("sft", cfg, out_dir, inputs, lambda d: run_sft(
        cfg, model_path(base), [str(k.path("sft.parquet")) for k in kept],
        str(corpus) if corpus.exists() else None, d))


@stage_task("reward-sample")
def reward_sample(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.sample import run_reward_sample
    model, probs = inputs["policy"], inputs["problems"]
    return run("reward-sample", cfg, out_dir, inputs,
               lambda d: run_reward_sample(cfg, model_path(model), probs.path("problems.parquet"), d))


@stage_task("reward")
def reward(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.reward import run_reward
    model, groups = inputs["policy"], inputs["groups"]
    return run("reward", cfg, out_dir, inputs,
               lambda d: run_reward(cfg, model_path(model), groups.path("verified.parquet"), d))


@stage_task("evaluate")
def evaluate(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.evaluate import load_test_set, run_evaluate
    test, _ = load_test_set(cfg)
    previous = inputs.get("previous")
    return run("evaluate", cfg, out_dir, inputs,
               lambda d: run_evaluate(cfg, model_path(inputs["policy"]), test, d, rm_path(inputs.get("rm")),
                                      previous.dir if previous else None, title=inputs.get("title", "Evaluation")))


@stage_task("grpo")
def grpo(cfg: Config, out_dir: str, inputs: dict) -> StageResult:
    from tasks.grpo import run_grpo
    model, probs = inputs["policy"], inputs["problems"]
    return run("grpo", cfg, out_dir, inputs,
               lambda d: run_grpo(cfg, model_path(model), rm_path(inputs.get("rm")), probs.path("problems.parquet"), d))


def rm_path(rm: StageResult | None) -> str | None:
    """The reward model a reward stage produced, or None (no RM yet, or the stage was skipped)."""
    if rm is None or "skipped" in rm.counts:
        return None
    return str(rm.path("model"))


def model_path(policy: StageResult) -> str:
    """The checkpoint folder a bootstrap or sft stage produced."""
    return policy.counts.get("external_model") or str(policy.path("model"))
