"""Ablations: the same loop with one part switched off, over several seeds, sharing one cache.

    selfimprove ablate configs/tiny.yaml --variant no-verifier --variant random-select --seeds 2

Every (variant, seed) is a run of its own, runs/<name>/<variant>/seed-<s>/, and the `ablate` flow
runs them one after another as child flows, the full loop first in each seed. All of them use one
Prefect result store (runs/<name>/.prefect-results), so a stage that a variant does not change
(the bootstrap, round 1's problems and samples, ...) runs once and is hard-linked into the other
runs' folders (flows/stages.py), and shows as Cached there. After each run, runs/<name>/report.md
and ablation.json are rewritten (tasks/ablation.py): every variant against the full loop, per
round, with a paired bootstrap interval over the held-out problems and the seeds pooled.

A variant is a set of config overrides (VARIANTS); a seed s > 0 moves the rounds' seeds (problem
draws, sampling, the random choice among correct paths) by s * SEED_STRIDE, never the bootstrap's:
the seeds measure the loop's own noise from one base model.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from tasks.config import Config

# what each variant switches off (docs/ablations.md says why each is the fair control)
VARIANTS: dict[str, dict] = {
    "full": {},
    # no verifier: samples are labelled by their problem's majority answer, never the gold
    # (problems with no majority share >= verify.vote_min_share give no training data)
    "no-verifier": {"verify.labels": "vote"},
    # the reward model does not choose among correct paths: a seeded random one is kept
    "random-select": {"select.chooser": "random"},
    # CoT only: no problem is sampled in TIR mode in the rounds (evaluation still reports TIR)
    "no-tir": {"sample.tir_fraction": 0.0},
    # no reward model at all: no RM training, random choice among correct paths, no rm@n
    "no-rm": {"reward.enabled": False},
}
SEED_STRIDE = 1000


def seed_overrides(cfg: Config, s: int) -> dict:
    """Seed s of an ablation: the rounds' seeds moved, the bootstrap's and the test set's kept."""
    if s == 0:
        return {}
    return {"sample.seed": cfg.sample.seed + s * SEED_STRIDE, "problems.seed": cfg.problems.seed + s * SEED_STRIDE}


def run_dir_of(root: Path, variant: str, s: int) -> Path:
    return Path(root) / variant / f"seed-{s}"


@flow(name="ablate", flow_run_name="{name}", persist_result=True)
def ablate(runs: list[tuple[str, int, Config]], root: str, name: str) -> dict:
    """Run every (variant, seed, config) with one result store; rewrite the report after each."""
    from flows.self_improve import self_improve
    from tasks.ablation import write_ablation_report

    log = get_run_logger()
    store = Path(root) / ".prefect-results"
    report = {}
    for variant, s, cfg in runs:
        run_dir = run_dir_of(Path(root), variant, s)
        run_dir.mkdir(parents=True, exist_ok=True)
        log.info("ablation %s: %s, seed %d -> %s", name, variant, s, run_dir)
        self_improve.with_options(result_storage=store, flow_run_name=f"{variant}-seed-{s}")(
            cfg, str(run_dir), f"{name}/{variant}/seed-{s}", str(store))
        report = write_ablation_report(Path(root))
    return report
