"""The whole loop, as Prefect flows: `self-improve` runs one `generation` child flow per
generation, each runs its `improve-round` child flows; with `grpo.enabled` the `rl` flow follows
the last generation (GRPO, evaluated like a round and recorded as round R+1, phase "grpo").

    selfimprove run configs/tiny.yaml [--generations 2]     # the CLI calls run_loop()

Generation 1's base is the bootstrap (round 0). Generation g > 1 is the report's first
self-improvement: the previous generation's last policy writes verified solutions to fresh
problems (`synthesize`), a new base is pretrained on the previous corpus plus that text
(`pretrain`), and the rounds run again from it. Folders: generation 1 at runs/<run>/round-XX/,
generation g at runs/<run>/gen-<g>/round-XX/ (round-00 holds its synthesis and pretraining).
Writes runs/<run>/config.yaml and, after every round, runs/<run>/summary.json and report.md.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml
from prefect import flow, get_run_logger

from flows import stages
from flows.round import evaluate, gold_labels, held_out, improve_round
from tasks.common import StageResult, write_json_atomic
from tasks.config import Config, EvolveConfig
from tasks.report import write_run_report


@flow(name="self-improve", flow_run_name="{run_name}", persist_result=True)
def self_improve(cfg: Config, run_dir: str, run_name: str, store: str | None = None) -> dict:
    """Every generation, then GRPO. `store`: Prefect's result store (the cache); by default the
    run's own, an ablation passes one store shared by its variants."""
    run_path = Path(run_dir)
    store = store or str(results_dir(run_dir))
    (run_path / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    write_json_atomic(run_path / "summary.json", {"run": run_name, "rounds": []})

    last = None
    for g in range(1, cfg.run.generations + 1):   # generation g runs with its generation_overrides
        last = generation.with_options(result_storage=Path(store))(cfg.for_generation(g), g, run_dir, store, last)

    # RL: GRPO from the last policy with the last reward model, then the same evaluation
    if cfg.grpo.enabled:
        from flows.rl import rl
        started = time.time()
        out = rl.with_options(result_storage=Path(store))(cfg.for_generation(cfg.run.generations),
                                                           str(generation_dir(run_dir, cfg.run.generations)),
                                                           last["policy"], last["rm"], last["evaluation"])
        _record(run_path, cfg.run.generations, cfg.run.rounds + 1, out["evaluation"],
                {**out["metrics"], "phase": "grpo"}, n_sft=0, sample_acc=None, wall_s=time.time() - started)
    return json.loads((run_path / "summary.json").read_text())


@flow(name="generation", flow_run_name="generation-{g}", persist_result=True)
def generation(cfg: Config, g: int, run_dir: str, store: str, previous: dict | None) -> dict:
    """One generation: its base model (round 0), then the improvement rounds from it."""
    log = get_run_logger()
    run_path, gen_dir = Path(run_dir), generation_dir(run_dir, g)
    r0 = gen_dir / "round-00"

    # Round 0: the base policy and its evaluation
    started = time.time()
    if g == 1:
        base = stages.run("bootstrap", cfg, r0 / "00-bootstrap", seed=cfg.run.seed, **held_out(cfg))
        counts = {}
    else:
        base, counts = new_base(cfg, r0, previous)
    evaluation = evaluate(cfg, r0 / "09-evaluate", policy=base, rm=None,
                          previous=previous["base_evaluation"] if previous else None,
                          title=f"Base v{g}" + (" (bootstrap)" if g == 1 else " (pretrained on corpus v2)"))
    _record(run_path, g, 0, evaluation, {**evaluation.counts, **counts}, n_sft=0, sample_acc=None,
            wall_s=time.time() - started)
    base_evaluation = evaluation

    policy, rm, kept = base, None, []
    for k in range(1, cfg.run.rounds + 1):
        started = time.time()
        out = improve_round.with_options(result_storage=Path(store))(
            cfg, k, str(gen_dir), policy, rm, base, kept, evaluation)
        policy, rm, kept, evaluation = out["policy"], out["rm"], [*kept, out["kept"]], out["evaluation"]
        _record(run_path, g, k, evaluation, {**out["metrics"], "rm_pair_acc": out["rm_pair_acc"]},
                out["n_sft"], out["sample_acc"], time.time() - started)
        log.info("generation %d round %d done: greedy %.3f", g, k, evaluation.counts["greedy"])
    return {"base": base, "base_evaluation": base_evaluation, "policy": policy, "rm": rm, "evaluation": evaluation}


def new_base(cfg: Config, r0: Path, previous: dict) -> tuple[StageResult, dict]:
    """Generation g's base: the last policy solves fresh problems, the verified solutions join the
    previous corpus, and a base model is pretrained on it."""
    s = cfg.synthesize
    # 1. problems: a fresh pool (its own seed), decontaminated like every round's; no evolution
    pool = cfg.problems.model_copy(update={"n_per_round": s.n_problems, "seed": s.seed, "evolve": EvolveConfig()})
    problems = stages.run("problems", cfg, r0 / "01-problems", problems=pool, round_k=0, **held_out(cfg),
                          policy=None, engine=None, prompt=None, key_extra=stages.problem_files_key(cfg))
    # 2-3. sample and verify: the last policy's solutions, CoT and TIR, checked against the gold
    sampling = cfg.sample.model_copy(update={"n": s.n, "temperature": s.temperature, "max_tokens": s.max_tokens,
                                             "tir_fraction": s.tir_fraction, "seed": s.seed})
    samples = stages.run("sample", cfg, r0 / "02-sample", sample=sampling, policy=previous["policy"], problems=problems)
    verified = stages.run("verify", cfg, r0 / "03-verify", verify=gold_labels(cfg), samples=samples,
                          problems=problems)
    # 4. synthesize: one verified solution per problem, deduplicated, decontaminated
    synthesized = stages.run("synthesize", cfg, r0 / "04-synthesize", verified=verified, problems=problems)
    # 5. pretrain: base v_g from corpus v_g = the previous base's corpus + the synthesized text
    old = previous["base"]
    corpus = stages.FileOf(old, "corpus.parquet") if "corpus" in old.counts else None
    base = stages.run("pretrain", cfg, r0 / "05-pretrain", max_length=cfg.max_length(), base=old, corpus=corpus,
                      synthesized=synthesized)
    return base, {"synthesized": synthesized.counts["synthesized"], "corpus": base.counts["corpus"]}


def generation_dir(run_dir: str | Path, g: int) -> Path:
    return Path(run_dir) if g == 1 else Path(run_dir) / f"gen-{g}"


def results_dir(run_dir: str) -> Path:
    """Prefect's result records (the cache) live with the run, so a resume finds them."""
    return Path(run_dir) / ".prefect-results"


def run_loop(cfg: Config, run_dir: str, run_name: str, store: str | None = None) -> dict:
    """Entry point for the CLI and tests: the flow with its result store under the run folder
    (or `store`, shared by the runs of an ablation)."""
    store = store or str(results_dir(run_dir))
    return self_improve.with_options(result_storage=Path(store))(cfg, run_dir, run_name, store)


def _record(run_path: Path, g: int, k: int, evaluation, metrics: dict, n_sft: int, sample_acc,
            wall_s: float) -> None:
    """Append a round's row to summary.json (read back from disk: each generation is its own flow),
    then rewrite the run report and publish the round's artifacts."""
    summary = json.loads((run_path / "summary.json").read_text())
    row = {"generation": g, "round": k, **{m: v for m, v in metrics.items() if m != "count"},
           "train_sample_acc": sample_acc, "n_sft": n_sft, "wall_s": round(_stage_seconds(evaluation, wall_s), 1),
           "eval_dir": str(Path(evaluation.dir).resolve().relative_to(run_path.resolve()))}
    by_op = _by_operation(evaluation.path("metrics.json"))
    if by_op:
        row["by_op"] = by_op
    summary["rounds"].append(row)
    write_json_atomic(run_path / "summary.json", summary)
    write_run_report(run_path)
    _publish(summary, g, k, evaluation)


def _stage_seconds(evaluation, flow_seconds: float) -> float:
    """A round's time: its stages' own wall times from their manifests, so a resume that takes
    them from cache reports what they cost when they ran (the flow's time when none is recorded)."""
    manifests = list(Path(evaluation.dir).parent.glob("*/manifest.json"))
    times = [json.loads(m.read_text()).get("wall_s") for m in manifests]
    return sum(t for t in times if t) or flow_seconds


def _by_operation(metrics_path: Path) -> dict:
    """Greedy accuracy per operation, CoT and TIR side by side (the tiny world's `op` slices)."""
    if not metrics_path.exists():
        return {}
    slices = json.loads(metrics_path.read_text()).get("slices", {})
    return {name.split("=", 1)[1]: {m: v for m, v in scores.items() if m in ("greedy", "tir_greedy", "count")}
            for name, scores in slices.items() if name.startswith("op=")}


def _publish(summary: dict, g: int, k: int, evaluation) -> None:
    """Per-round table and markdown artifacts and a link to the checkpoint: the UI reads like the report."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from tasks.report import by_mode

    slug = re.sub(r"[^a-z0-9-]+", "-", summary["run"].lower()).strip("-") or "run"
    table, _ = by_mode(summary["rounds"])  # the table of the run's report.md
    create_table_artifact(key=f"{slug}-summary", table=table,
                          description=f"Run {summary['run']}: held-out accuracy per round and mode, CoT and TIR "
                                      f"(round 0 = base model), after generation {g} round {k}")
    round_key = f"{slug}-round-{k:02d}" if g == 1 else f"{slug}-gen-{g}-round-{k:02d}"
    report = evaluation.path("report.md")
    if report.exists():
        create_markdown_artifact(key=round_key, markdown=report.read_text(),
                                 description=f"Generation {g}, round {k} evaluation")
    stage_dir = Path(evaluation.dir).parent
    folder = "02-grpo" if stage_dir.name == "rl" else ("06-sft" if k else ("00-bootstrap" if g == 1 else "05-pretrain"))
    create_link_artifact(key=f"{round_key}-checkpoint", link=(stage_dir / folder / "model").resolve().as_uri(),
                         description=f"Generation {g}, round {k} policy checkpoint")
