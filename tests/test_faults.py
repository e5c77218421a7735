"""A doubled or killed run: one run per run folder, and no process outlives the command.

    .venv/bin/python -m pytest tests/test_faults.py -q              # fast: the lock and the reaper
    .venv/bin/python -m pytest tests/test_faults.py -q -m slow      # smoke runs killed by signals, ~6 min

The fast tests use small stand-in processes (`sleep`); the slow ones run `selfimprove run
configs/smoke.yaml` and signal it once vLLM's engine process exists.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from conftest import REPO

PY = [sys.executable, "-c"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300", "PYTHONUNBUFFERED": "1"}
INTERRUPTED = "error: interrupted; finished stages are kept, continue with --resume"


def cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *map(str, args)], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=900, **kw)


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> list[str]:
    """Poll until every process has ended (zombies count as ended); the ones still alive."""
    deadline = time.time() + timeout_s
    while True:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive or time.time() > deadline:
            return [f"{p.name()}[{p.pid}]" for p in alive]
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# One run per run folder

@pytest.fixture
def holder(tmp_path):
    """A process holding the lock of tmp_path/runs/smoke, as a running `selfimprove run` does."""
    run_dir = tmp_path / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    code = textwrap.dedent(f"""
        import time
        from flows.hygiene import run_lock
        with run_lock({str(run_dir)!r}):
            print("locked", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen(PY + [code], cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    yield proc, run_dir
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("resume", [True, False])
def test_a_second_run_on_a_folder_is_refused_naming_the_holder(holder, resume):
    proc, run_dir = holder
    result = cli("run", "configs/smoke.yaml", "--home", run_dir.parent, *(["--resume"] if resume else []))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {run_dir} is in use by another run (pid {proc.pid}); wait for it to end or stop it"]
    assert (run_dir / "run.lock").read_text() == f"{proc.pid}\n"
    assert sorted(p.name for p in run_dir.iterdir()) == ["run.lock"]  # the refused run wrote nothing


def test_a_killed_holder_releases_the_lock(holder):
    from flows.hygiene import RunFolderBusy, lock_holder, run_lock

    proc, run_dir = holder
    assert lock_holder(run_dir) == proc.pid
    with pytest.raises(RunFolderBusy, match=rf"in use by another run \(pid {proc.pid}\)"):
        with run_lock(run_dir):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_holder(run_dir) is None
    with run_lock(run_dir):
        assert lock_holder(run_dir) == os.getpid()
    assert lock_holder(run_dir) is None


def test_a_forked_child_of_a_dead_holder_is_named_as_such(tmp_path):
    """A child forked by the run (not exec'd) shares its lock until the reaper stops it."""
    from flows.hygiene import RunFolderBusy, run_lock

    code = textwrap.dedent(f"""
        import os, time
        from flows.hygiene import run_lock
        with run_lock({str(tmp_path)!r}):
            child = os.fork()
            if child == 0:
                time.sleep(600)
            print(child, flush=True)
            os._exit(0)
    """)
    proc = subprocess.Popen(PY + [code], cwd=REPO, env=ENV, stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        assert proc.wait(timeout=60) == 0
        dead = proc.pid
        assert (tmp_path / "run.lock").read_text() == f"{dead}\n"
        with pytest.raises(RunFolderBusy) as e:
            with run_lock(tmp_path):
                pass
        assert str(e.value) == (f"{tmp_path} is still held by a process of a run that ended (pid {dead}); "
                                "its reaper stops such processes within seconds, try again")
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_scheduled_iteration_on_a_busy_folder_fails_at_once(holder):
    from flows.hygiene import RunFolderBusy
    from flows.ops import scheduled_iteration

    proc, run_dir = holder
    with pytest.raises(RunFolderBusy, match=rf"{run_dir} is in use by another run \(pid {proc.pid}\)"):
        scheduled_iteration.fn(str(REPO / "configs" / "smoke.yaml"), run_dir.name, str(run_dir.parent))


# ---------------------------------------------------------------------------------------------
# The reaper

CHILDREN = textwrap.dedent("""
    import subprocess, sys, time
    from flows.hygiene import start_reaper
    reaper = start_reaper()
    kids = [subprocess.Popen(["sleep", "600"]),
            subprocess.Popen(["sleep", "601"], start_new_session=True),          # its own session
            subprocess.Popen(["sh", "-c", "sleep 602 & wait"])]                   # a grandchild
    time.sleep(2)   # several refreshes of the reaper's list
    print(reaper.pid, *[k.pid for k in kids], flush=True)
    if sys.argv[1] == "exit":
        sys.exit(0)
    time.sleep(600)
""")


def start_children(how: str) -> tuple[subprocess.Popen, psutil.Process, list[psutil.Process]]:
    proc = subprocess.Popen(PY + [CHILDREN, how], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    reaper, *kids = map(int, proc.stdout.readline().split())
    return proc, psutil.Process(reaper), [psutil.Process(k) for k in kids] + psutil.Process(kids[2]).children()


def test_sigkill_of_the_command_takes_its_children_along():
    proc, reaper, kids = start_children("wait")
    assert len(kids) == 4 and all(k.is_running() for k in kids)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)   # stderr closes when the reaper and every child are gone
    assert wait_gone(kids + [reaper], 30) == []
    assert err.startswith(f"selfimprove: pid {proc.pid} ended; stopped 4 processes it left: ")
    assert sorted(err.count(f"[{k.pid}]") for k in kids) == [1, 1, 1, 1]


def test_a_normal_exit_stops_children_quietly():
    proc, reaper, kids = start_children("exit")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert wait_gone(kids + [reaper], 30) == []
    assert err == ""


def test_the_reaper_spares_a_process_group_member_that_is_not_a_descendant():
    """`selfimprove run ... | tee log`: tee shares the command's process group; it must keep running."""
    code = "import time; from flows.hygiene import start_reaper; start_reaper(); time.sleep(600)"
    proc = subprocess.Popen(PY + [code], cwd=REPO, env=ENV, process_group=0)  # leads its own group
    neighbour = subprocess.Popen(["sleep", "600"], preexec_fn=lambda: os.setpgid(0, proc.pid))
    try:
        while not psutil.Process(proc.pid).children():
            time.sleep(0.1)
        reaper = psutil.Process(proc.pid).children()[0]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_gone([reaper], 30) == []
        assert neighbour.poll() is None
    finally:
        neighbour.kill()
        neighbour.wait()


# ---------------------------------------------------------------------------------------------
# A real run, signalled while vLLM runs (slow)

def start_smoke(home: Path, log: Path) -> subprocess.Popen:
    """The command as a terminal starts it: SIGINT not ignored (pytest may run in a background
    job, whose children inherit an ignored SIGINT), in a session of its own. vLLM's engine runs
    in its own processes, as on GPUs (on CPU it runs inside the command): the case with the most
    processes to stop, and the one whose start-up handshake swallows Ctrl-C."""
    env = {**ENV, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "configs/smoke.yaml", "--home", str(home)],
                            cwd=REPO, env=env, start_new_session=True, stdout=open(log.with_suffix(".out"), "w"),
                            stderr=open(log.with_suffix(".err"), "w"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_engine(proc: subprocess.Popen, timeout_s: float = 900) -> list[psutil.Process]:
    """The command's descendants once vLLM's engine process is among them."""
    cli_proc, deadline = psutil.Process(proc.pid), time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None:
        kids = cli_proc.children(recursive=True)
        names = []
        for k in kids:
            try:
                names.append(k.name() + " ".join(k.cmdline()))
            except psutil.Error:
                pass
        if any("EngineCore" in n for n in names):
            return kids
        time.sleep(0.5)
    raise AssertionError(f"no vLLM engine process appeared; exit code {proc.poll()}")


@pytest.mark.slow
def test_sigkill_leaves_no_process_and_the_run_resumes(tmp_path):
    proc = start_smoke(tmp_path / "runs", tmp_path / "first")
    kids = wait_for_engine(proc)
    assert any("prefect.server" in " ".join(k.cmdline()) for k in kids)   # Prefect's temporary server
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert wait_gone(kids, 10) == []
    assert "stopped" in (tmp_path / "first.err").read_text().splitlines()[-1]
    resumed = cli("run", "configs/smoke.yaml", "--home", tmp_path / "runs", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = (tmp_path / "runs" / "smoke" / "summary.json").read_text()
    assert [r["round"] for r in __import__("json").loads(summary)["rounds"]] == [0, 1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_engine_starts_ends_the_run(tmp_path, sig):
    """vLLM swallows KeyboardInterrupt during its start-up handshake; Ctrl-C there must still count."""
    proc = start_smoke(tmp_path / "runs", tmp_path / "run")
    kids = wait_for_engine(proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=300) == 1
    errors = [line for line in (tmp_path / "run.err").read_text().splitlines() if line.startswith("error:")]
    assert errors == [INTERRUPTED]
    assert wait_gone(kids, 10) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_ends_the_run_like_ctrl_c(tmp_path, sig):
    """Signalled in round 1, with the engine up (round 0's evaluation has used it)."""
    proc = start_smoke(tmp_path / "runs", tmp_path / "run")
    wait_for_engine(proc)
    round_0 = tmp_path / "runs" / "smoke" / "round-00" / "09-evaluate" / "manifest.json"
    deadline = time.time() + 900
    while not round_0.exists():
        assert proc.poll() is None and time.time() < deadline, (tmp_path / "run.err").read_text()[-3000:]
        time.sleep(0.2)
    kids = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    assert proc.wait(timeout=300) == 1
    errors = [line for line in (tmp_path / "run.err").read_text().splitlines() if line.startswith("error:")]
    assert errors == [INTERRUPTED]
    assert wait_gone(kids, 10) == []
