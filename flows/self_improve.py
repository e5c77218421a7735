"""The whole loop: bootstrap (round 0), R improvement rounds (each a child flow), then with
`grpo.enabled` the `rl` flow (GRPO, evaluated like a round and recorded as round R+1, phase "grpo").

    selfimprove run configs/tiny.yaml          # the CLI calls self_improve()

Writes runs/<run>/config.yaml and, after every round, runs/<run>/summary.json.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import yaml
from prefect import flow, get_run_logger

from flows import stages
from flows.round import evaluate, held_out, improve_round
from tasks.common import write_json_atomic
from tasks.config import Config
from tasks.report import write_run_report


@flow(name="self-improve", flow_run_name="{run_name}", persist_result=True)
def self_improve(cfg: Config, run_dir: str, run_name: str) -> dict:
    log = get_run_logger()
    run_path = Path(run_dir)
    (run_path / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    summary = {"run": run_name, "rounds": []}

    # Round 0: the base policy and its evaluation
    started = time.time()
    r0 = run_path / "round-00"
    bootstrap = stages.run("bootstrap", cfg, r0 / "00-bootstrap", seed=cfg.run.seed, **held_out(cfg))
    evaluation = evaluate(cfg, r0 / "09-evaluate", policy=bootstrap, rm=None, previous=None, title="Round 0 (bootstrap)")
    _record(summary, run_path, 0, evaluation, evaluation.counts, n_sft=0, sample_acc=None, wall_s=time.time() - started)

    policy, rm, kept = bootstrap, None, []
    for k in range(1, cfg.run.rounds + 1):
        started = time.time()
        out = improve_round.with_options(result_storage=results_dir(run_dir))(
            cfg, k, run_dir, policy, rm, bootstrap, kept, evaluation)
        policy, rm, kept, evaluation = out["policy"], out["rm"], [*kept, out["kept"]], out["evaluation"]
        _record(summary, run_path, k, evaluation, {**out["metrics"], "rm_pair_acc": out["rm_pair_acc"]},
                out["n_sft"], out["sample_acc"], time.time() - started)
        log.info("round %d done: %s", k, summary["rounds"][-1])

    # RL: GRPO from the last policy with the last reward model, then the same evaluation
    if cfg.grpo.enabled:
        from flows.rl import rl
        started = time.time()
        out = rl.with_options(result_storage=results_dir(run_dir))(cfg, run_dir, policy, rm, evaluation)
        _record(summary, run_path, cfg.run.rounds + 1, out["evaluation"], {**out["metrics"], "phase": "grpo"},
                n_sft=0, sample_acc=None, wall_s=time.time() - started)
    return summary


def results_dir(run_dir: str) -> Path:
    """Prefect's result records (the cache) live with the run, so a resume finds them."""
    return Path(run_dir) / ".prefect-results"


def run_loop(cfg: Config, run_dir: str, run_name: str) -> dict:
    """Entry point for the CLI and tests: the flow with its result store under the run folder."""
    return self_improve.with_options(result_storage=results_dir(run_dir))(cfg, run_dir, run_name)


def _record(summary: dict, run_path: Path, k: int, evaluation, metrics: dict, n_sft: int, sample_acc,
            wall_s: float) -> None:
    row = {"round": k, **{m: v for m, v in metrics.items() if m != "count"},
           "train_sample_acc": sample_acc, "n_sft": n_sft, "wall_s": round(_stage_seconds(evaluation, wall_s), 1)}
    by_op = _by_operation(evaluation.path("metrics.json"))
    if by_op:
        row["by_op"] = by_op
    summary["rounds"].append(row)
    write_json_atomic(run_path / "summary.json", summary)
    write_run_report(run_path)
    _publish(summary, k, evaluation)


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


def _publish(summary: dict, k: int, evaluation) -> None:
    """Per-round table and markdown artifacts and a link to the checkpoint: the UI reads like the report."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

    from tasks.report import by_mode

    slug = re.sub(r"[^a-z0-9-]+", "-", summary["run"].lower()).strip("-") or "run"
    table, _ = by_mode(summary["rounds"])  # the table of the run's report.md
    create_table_artifact(key=f"{slug}-summary", table=table,
                          description=f"Run {summary['run']}: held-out accuracy per round and mode, CoT and TIR "
                                      f"(round 0 = bootstrap), after round {k}")
    report = evaluation.path("report.md")
    if report.exists():
        create_markdown_artifact(key=f"{slug}-round-{k:02d}", markdown=report.read_text(),
                                 description=f"Round {k} evaluation")
    folder = "02-grpo" if Path(evaluation.dir).parent.name == "rl" else ("06-sft" if k else "00-bootstrap")
    model = Path(evaluation.dir).parent / folder / "model"
    create_link_artifact(key=f"{slug}-round-{k:02d}-checkpoint", link=model.resolve().as_uri(),
                         description=f"Round {k} policy checkpoint")
