"""Operations against a real Prefect server: a failed round and its retries, a scheduled
deployment that never runs two iterations at once, and a screenshot of the UI.

    .venv/bin/python -m pytest -m slow tests/test_ops.py -q      # ~16 min on 2 shared cores

One server for the module (flows.ops.start_server: SQLite under a tmp PREFECT_HOME, a free port
on 127.0.0.1). Runs go through the real CLI in subprocesses; states are read through the Prefect
API, not from logs. The failure is a config typo (`sft.train.lr_scheduler`): sft raises in the
middle of round 1, after problems..select finished. The retries, in order: `selfimprove run
--resume` after fixing the YAML in place; `prefect flow-run retry --entrypoint` of the failed run
(same parameters, so the same error); then a served deployment's failed run retried from the UI
(the request its Retry button sends) and with `prefect flow-run retry`. See docs/operations.md.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from html import unescape
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "configs" / "smoke.yaml"
CLI = [sys.executable, "-m", "flows.cli"]
PREFECT = [sys.executable, "-m", "prefect"]
TYPO = "cosine-typo"  # not a transformers scheduler: sft raises ValueError naming the valid ones
BEFORE_SFT = ["round-00/bootstrap", "round-00/evaluate", "round-01/problems", "round-01/sample",
              "round-01/verify", "round-01/score", "round-01/select"]
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# ---- helpers: processes, configs, the API ------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(server, **extra) -> dict:
    return {**os.environ, "PREFECT_HOME": str(server.home), "PREFECT_API_URL": server.api_url,
            "PYTHONUNBUFFERED": "1", **extra}


def _start(args, server, log: Path, **extra_env) -> subprocess.Popen:
    """A command in its own process group (so a stop reaches vLLM's workers too); stderr apart."""
    return subprocess.Popen(args, cwd=REPO, env=_env(server, **extra_env), start_new_session=True,
                            stdout=open(log.with_suffix(".out"), "w"), stderr=open(log.with_suffix(".err"), "w"))


def _group(pgid: int) -> list[str]:
    """Live processes (not zombies) of a process group: what a stopped command left running."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120])
    return out


def _wait_group_gone(pgid: int, timeout_s: float = 60) -> list[str]:
    deadline = time.time() + timeout_s
    while (left := _group(pgid)) and time.time() < deadline:
        time.sleep(1)
    return left


def _exit_code(proc: subprocess.Popen, timeout_s: float = 120) -> int | None:
    """The exit code once a signalled process has exited; None if it is still running."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None


def _stop(proc: subprocess.Popen) -> None:
    """Kill what is left of a command we started: its whole process group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


def _write_config(path: Path, name: str, typo: bool) -> None:
    """The smoke config, one round; with `typo` the sft stage fails on its scheduler name."""
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["run"].update(name=name, rounds=1)
    cfg["sft"]["train"].pop("lr_scheduler", None)
    if typo:
        cfg["sft"]["train"]["lr_scheduler"] = TYPO
    path.write_text(f"# selfimprove run {path.name}  (tests/test_ops.py)\n" + yaml.safe_dump(cfg, sort_keys=False))


def _api(server, fn):
    """Run `await fn(client)` against the test server (settings are fixed at import: set them here)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def go():
        async with get_client() as client:
            return await fn(client)
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        return asyncio.run(go())


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _children(client, flow_run_id):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    return await client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))


async def _stage_states(client, root_id, since: datetime | None = None) -> dict[str, str]:
    """{'round-01/sft': 'Failed', ...}: task runs under a flow run (children too), created after `since`."""
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    states, todo = {}, [(root_id, "round-00")]
    while todo:
        run_id, label = todo.pop()
        tasks = await client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id])))
        for t in sorted(tasks, key=lambda t: t.created):
            if since is None or t.created >= since:
                states[f"{label}/{t.name.rsplit('-', 1)[0]}"] = t.state_name
        for child in await _children(client, run_id):
            if since is None or child.created >= since:
                todo.append((child.id, child.name if re.fullmatch(r"round-\d\d", child.name) else label))
    return states


async def _task_messages(client, root_id) -> dict[str, str]:
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
    out, todo = {}, [root_id]
    while todo:
        run_id = todo.pop()
        for t in await client.read_task_runs(task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run_id]))):
            out[t.name.rsplit("-", 1)[0]] = t.state.message or ""
        todo += [c.id for c in await _children(client, run_id)]
    return out


async def _roots(client, flow_name: str):
    """Top-level runs of a flow, newest first."""
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                                       sort=FlowRunSort.EXPECTED_START_TIME_DESC)
    return [r for r in runs if r.parent_task_run_id is None]


def _wait_run(server, flow_run_id, attempt: int, timeout_s: float, serving: subprocess.Popen | None = None):
    """The flow run once its `attempt`-th run has reached a terminal state."""
    deadline = time.time() + timeout_s
    while True:
        run = _api(server, lambda c: c.read_flow_run(flow_run_id))
        if run.run_count >= attempt and run.state_type.value in TERMINAL:
            return run
        assert serving is None or serving.poll() is None, "the serve process exited"
        assert time.time() < deadline, f"flow run {flow_run_id} still {run.state_name} (run_count {run.run_count})"
        time.sleep(2)


def _summary_rounds(run_dir: Path) -> int:
    path = run_dir / "summary.json"
    return len(json.loads(path.read_text())["rounds"]) if path.exists() else 0


# ---- the server ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from flows.ops import start_server, stop_server

    home = tmp_path_factory.mktemp("prefect-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_HOME", str(home))
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        mp.delenv("PREFECT_API_URL", raising=False)
        info = start_server(_free_port())
        try:
            yield SimpleNamespace(home=home, port=info["port"], api_url=info["api_url"])
        finally:
            stop_server()


# ---- a failed round and its retries -------------------------------------------------------------

@pytest.fixture(scope="module")
def failed_run(server, tmp_path_factory):
    """`selfimprove run` of one smoke round whose sft stage raises (a scheduler-name typo)."""
    work = tmp_path_factory.mktemp("retry")
    config = work / "retry.yaml"
    _write_config(config, "retry", typo=True)
    proc = _start([*CLI, "run", str(config), "--home", str(work)], server, work / "failed")
    rc = proc.wait(timeout=900)
    root = next(r for r in _api(server, lambda c: _roots(c, "self-improve")) if r.name == "retry")
    return SimpleNamespace(server=server, work=work, config=config, run_dir=work / "retry", rc=rc,
                           stderr=(work / "failed.err").read_text(), root=root,
                           states=_api(server, lambda c: _stage_states(c, root.id)),
                           messages=_api(server, lambda c: _task_messages(c, root.id)))


def test_failed_stage_exits_nonzero_with_one_line_cause(failed_run):
    assert failed_run.rc == 1, failed_run.stderr[-3000:]
    errors = [line for line in failed_run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, failed_run.stderr[-3000:]
    # the whole cause on that one line (not wrapped to the console width), then how to continue
    assert re.fullmatch(rf"error: ValueError: {TYPO} is not a valid SchedulerType.*\]  \(continue with --resume after fixing\)",
                        errors[0]), f"cause wrapped or cut (flows/cli.py: Console(stderr=True, soft_wrap=True)): {errors[0]}"


def test_failed_stage_is_failed_in_prefect_with_the_reason(failed_run):
    run, states = failed_run.root, failed_run.states
    assert run.state_name == "Failed" and TYPO in run.state.message
    assert states["round-01/sft"] == "Failed", states
    for stage in BEFORE_SFT:
        assert states[stage] == "Completed", (stage, states)
    assert "round-01/evaluate" not in states  # nothing after the failure ran
    sft = failed_run.messages["sft"]
    assert "ValueError" in sft and TYPO in sft  # what the UI shows on the task


@pytest.fixture(scope="module")
def resumed(failed_run):
    """Fix the YAML in place, then `selfimprove run --resume`: a new flow run on the same folder."""
    server = failed_run.server
    _write_config(failed_run.config, "retry", typo=False)
    started = _now()
    proc = _start([*CLI, "run", str(failed_run.config), "--home", str(failed_run.work), "--resume"],
                  server, failed_run.work / "resumed")
    rc = proc.wait(timeout=900)
    root = next(r for r in _api(server, lambda c: _roots(c, "self-improve")) if r.created >= started)
    return SimpleNamespace(rc=rc, root=root, states=_api(server, lambda c: _stage_states(c, root.id)),
                           stderr=(failed_run.work / "resumed.err").read_text(),
                           rounds=_summary_rounds(failed_run.run_dir))


def test_resume_after_fix_completes_with_finished_stages_cached(failed_run, resumed):
    assert resumed.rc == 0, resumed.stderr[-3000:]
    assert resumed.root.state_name == "Completed" and resumed.root.id != failed_run.root.id
    for stage in BEFORE_SFT:
        assert resumed.states[stage] == "Cached", (stage, resumed.states)
    for stage in ("sft", "reward-sample", "reward", "evaluate"):
        assert resumed.states[f"round-01/{stage}"] == "Completed", (stage, resumed.states)
    assert resumed.rounds == 2


@pytest.fixture(scope="module")
def entrypoint_retry(failed_run, resumed):
    """`prefect flow-run retry ID --entrypoint ...` of the failed run, after the YAML was fixed.

    No deployment, so Prefect runs the same flow run here with the parameters it started with: the
    Config object itself, not the YAML path, so the typo is still there. Round 0's results live with the run folder, which the
    loaded flow does not know: PREFECT_RESULTS_LOCAL_STORAGE_PATH points Prefect there.
    """
    server = failed_run.server
    started = _now()
    proc = _start([*PREFECT, "flow-run", "retry", str(failed_run.root.id), "--entrypoint", "flows/self_improve.py:self_improve"],
                  server, failed_run.work / "entrypoint-retry",
                  PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(failed_run.run_dir / ".prefect-results"))
    rc = proc.wait(timeout=900)
    run = _api(server, lambda c: c.read_flow_run(failed_run.root.id))
    states = _api(server, lambda c: _stage_states(c, failed_run.root.id, since=started))
    return SimpleNamespace(rc=rc, run=run, states=states, out=(failed_run.work / "entrypoint-retry.out").read_text())


def test_prefect_retry_without_deployment_reruns_the_same_run_and_config(failed_run, entrypoint_retry):
    r = entrypoint_retry
    assert r.rc == 1 and "finished with state: FAILED" in r.out, r.out[-2000:]
    assert r.run.id == failed_run.root.id and r.run.run_count == 2
    for stage in BEFORE_SFT:
        assert r.states[stage] == "Cached", (stage, r.states)
    assert r.states["round-01/sft"] == "Failed"  # same config as the first attempt: same error


@pytest.fixture(scope="module")
def scheduled_retry(failed_run, resumed, entrypoint_retry):
    """A served deployment continues the folder; its run fails, is retried from the UI, then by CLI.

    The scheduled run's parameter is the YAML path, so a retry reads the fixed file. The typo
    changes sft's cache key, so round 1's sft runs (and fails) again; round 2 comes after it.
    """
    server, work = failed_run.server, failed_run.work
    _write_config(failed_run.config, "retry", typo=True)
    serving = _start([*CLI, "serve", str(failed_run.config), "--cron", "0 0 1 1 *", "--home", str(work)],
                     server, work / "serve-retry")
    try:
        deployment = _deployment(server, "scheduled-iteration/retry-schedule", serving)
        flow_run = _api(server, lambda c: c.create_flow_run_from_deployment(deployment.id))
        first = _wait_run(server, flow_run.id, 1, 900, serving)

        # What the UI's Retry button sends (prefect/server/ui-v2, 3.8.8), the YAML still broken
        from prefect.client.schemas.objects import State, StateType
        ui_started = _now()
        _api(server, lambda c: c.set_flow_run_state(
            flow_run.id, State(type=StateType.SCHEDULED, name="AwaitingRetry", message="Retry from the UI"), force=True))
        after_ui = _wait_run(server, flow_run.id, 2, 900, serving)
        ui_states = _api(server, lambda c: _stage_states(c, flow_run.id, since=ui_started))

        _write_config(failed_run.config, "retry", typo=False)
        cli_started = _now()
        cli = subprocess.run([*PREFECT, "flow-run", "retry", str(flow_run.id)], cwd=REPO, env=_env(server),
                             capture_output=True, text=True, timeout=120)
        after_cli = _wait_run(server, flow_run.id, 3, 900, serving)
        cli_states = _api(server, lambda c: _stage_states(c, flow_run.id, since=cli_started))

        os.kill(serving.pid, signal.SIGINT)  # Ctrl-C
        rc = _exit_code(serving)
        if rc is None:  # still running: its stacks go to the log the assertion prints (faulthandler)
            os.kill(serving.pid, signal.SIGUSR1)
            time.sleep(2)
        left = _wait_group_gone(serving.pid)
        deployment = _api(server, lambda c: c.read_deployment(deployment.id))
    finally:
        _stop(serving)
    return SimpleNamespace(first=first, after_ui=after_ui, ui_states=ui_states, cli=cli, after_cli=after_cli,
                           cli_states=cli_states, serve_rc=rc, left=left, deployment=deployment,
                           run_dir=failed_run.run_dir, log=(work / "serve-retry.err").read_text())


def _deployment(server, name: str, serving: subprocess.Popen, timeout_s: float = 180):
    from prefect.exceptions import ObjectNotFound
    deadline = time.time() + timeout_s
    while True:
        try:
            return _api(server, lambda c: c.read_deployment_by_name(name))
        except ObjectNotFound:
            assert serving.poll() is None, f"serve exited with {serving.returncode}"
            assert time.time() < deadline, f"deployment {name} never appeared"
            time.sleep(1)


def test_ui_retry_of_scheduled_run_reruns_it_from_cache(scheduled_retry):
    r = scheduled_retry
    assert r.first.state_name == "Failed" and TYPO in r.first.state.message, r.log[-3000:]
    assert r.after_ui.state_name == "Failed" and r.after_ui.run_count == 2  # retried in place, same cause
    for stage in BEFORE_SFT:
        assert r.ui_states[stage] == "Cached", (stage, r.ui_states)
    assert r.ui_states["round-01/sft"] == "Failed"


def test_cli_retry_of_scheduled_run_completes_after_fix(scheduled_retry):
    r = scheduled_retry
    assert r.cli.returncode == 0 and "scheduled for retry" in r.cli.stdout, r.cli.stdout + r.cli.stderr
    assert r.after_cli.state_name == "Completed" and r.after_cli.run_count == 3, r.log[-3000:]
    for stage in [*BEFORE_SFT, "round-01/sft", "round-01/reward", "round-01/evaluate"]:
        assert r.cli_states[stage] == "Cached", (stage, r.cli_states)
    assert r.cli_states["round-02/sft"] == "Completed"
    assert _summary_rounds(r.run_dir) == 3  # the scheduled iteration added round 2


def test_serve_stops_on_sigint_with_schedule_paused(scheduled_retry):
    r = scheduled_retry
    assert r.serve_rc == 0 and not r.left, (r.serve_rc, r.left, r.log[-8000:])
    assert r.deployment.paused, r.log[-2000:]


# ---- the UI -------------------------------------------------------------------------------------

def _chromium(flags: list[str], url: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", "--virtual-time-budget=30000", "--window-size=1400,1000",
                           *flags, url], capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (bash infra/install-ui-test.sh)")
def test_ui_flow_run_page_shows_the_round_tasks(failed_run, resumed, tmp_path):
    server = failed_run.server
    # self-improve -> generation-1 -> round-01: each generation is a flow run of its own
    generation = next(c for c in _api(server, lambda c: _children(c, resumed.root.id)) if c.name == "generation-1")
    round_run = next(c for c in _api(server, lambda c: _children(c, generation.id)) if c.name == "round-01")
    url = f"http://127.0.0.1:{server.port}/runs/flow-run/{round_run.id}"
    shot = tmp_path / "flow-run.png"
    _chromium([f"--screenshot={shot}"], url, tmp_path / "profile-shot")
    assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    dom = _chromium(["--dump-dom"], url, tmp_path / "profile-dom").stdout
    text = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))
    assert "round-01" in text, text[:2000]
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId
    tasks = _api(server, lambda c: c.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[round_run.id]))))
    names = {t.name for t in tasks}
    assert {n.rsplit("-", 1)[0] for n in names} >= {"problems", "sample", "verify", "score", "select", "sft", "evaluate"}
    missing = [n for n in names if n not in text]
    assert not missing, f"task runs not on the page: {missing}"

    # Kept where a person looks after the run (git-ignored); docs/img/flow-run.png is a copy of one.
    (REPO / "test-outputs").mkdir(exist_ok=True)
    shutil.copy(shot, REPO / "test-outputs" / "flow-run.png")


# ---- scheduled iterations -----------------------------------------------------------------------

def test_serve_every_15s_queues_runs_and_stops_cleanly(server, tmp_path):
    """Runs take ~1-2 min, the interval is 15 s: they must queue (limit 1), never overlap.

    After two completed runs, SIGTERM arrives in the middle of the third: Prefect's runner starts
    nothing new, lets that run finish, and exits; the deployment is paused.
    """
    serving = _start([*CLI, "serve", str(SMOKE), "--every", "15s", "--run", "sched", "--home", str(tmp_path)],
                     server, tmp_path / "serve")
    run_dir = tmp_path / "sched"
    try:
        deployment = _deployment(server, "scheduled-iteration/sched-schedule", serving)
        watch = _watch_schedule(server, deployment.id, serving, run_dir)
        stopped_at = _now()
        os.kill(serving.pid, signal.SIGTERM)  # what a service manager sends
        rc = _exit_code(serving, timeout_s=600)
        left = _wait_group_gone(serving.pid)
        deployment = _api(server, lambda c: c.read_deployment(deployment.id))
        runs = _api(server, lambda c: _deployment_runs(c, deployment.id))
    finally:
        _stop(serving)
    first, second = watch.rounds_when_done
    assert watch.max_running == 1 and watch.queued_seen, "runs came due while one was running, and waited"
    assert 1 <= first < second, watch.rounds_when_done  # each run continued the folder by one round
    assert rc == 0 and not left, (rc, left)
    assert deployment.paused
    interrupted = next(r for r in runs if r.id == watch.interrupted)
    assert interrupted.state_name == "Completed", interrupted.state  # the run in progress finished
    assert not [r.name for r in runs if r.start_time and r.start_time > stopped_at]  # nothing new started
    assert _summary_rounds(run_dir) == second + 1
    unfinished = [d for d in run_dir.glob("round-*/[0-9][0-9]-*") if ".tmp-" not in d.name
                  and not (d / "manifest.json").exists()]
    assert not unfinished, f"stage folders without a manifest: {unfinished}"


def _watch_schedule(server, deployment_id, serving, run_dir: Path, timeout_s: float = 1200):
    """Poll the deployment's runs every second until two completed and a third has run for 15 s."""
    w = SimpleNamespace(max_running=0, queued_seen=False, done={}, interrupted=None)
    started = time.time()
    while True:
        assert serving.poll() is None, (run_dir.parent / "serve.err").read_text()[-3000:]
        assert time.time() < started + timeout_s, f"two scheduled runs did not complete: {w.done}"
        runs = _api(server, lambda c: _deployment_runs(c, deployment_id))
        assert runs or time.time() < started + 150, _scheduler_errors(server)
        running = [r for r in runs if r.state_type.value == "RUNNING"]
        w.max_running = max(w.max_running, len(running))
        assert len(running) <= 1, [(r.name, r.state_name) for r in runs]
        due = [r for r in runs if r.state_type.value == "SCHEDULED" and r.expected_start_time < _now()]
        w.queued_seen |= bool(running and due)
        for r in runs:
            if r.state_name == "Completed" and r.id not in w.done:
                w.done[r.id] = _summary_rounds(run_dir)
        assert not [r for r in runs if r.state_type.value in {"FAILED", "CRASHED"}], \
            (run_dir.parent / "serve.err").read_text()[-3000:]
        if len(w.done) >= 2 and running and (_now() - running[0].start_time).total_seconds() > 15:
            w.interrupted, w.rounds_when_done = running[0].id, list(w.done.values())[:2]
            return w
        time.sleep(1)


def _scheduler_errors(server) -> str:
    """Why no scheduled run appeared: the server's scheduler errors, if any."""
    log = (server.home / "server.log").read_text(errors="replace")
    errors = [line for line in log.splitlines() if "Error" in line or "schedul" in line]
    hint = ("SQLAlchemy 2.1 breaks Prefect 3.8.8's scheduler (bulk_dml): pin sqlalchemy<2.1"
            if "bulk_dml" in log else "see server.log")
    return f"the server scheduled no runs in 150 s; {hint}\n" + "\n".join(errors[-5:])


async def _deployment_runs(client, deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    return await client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
