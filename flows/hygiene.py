"""Process hygiene for the CLI: one run per run folder, and no processes left behind.

    from flows.hygiene import interrupt_on_signals, run_lock, start_reaper
    start_reaper()                       # first thing a long command does
    with run_lock(run_dir):              # RunFolderBusy when another process runs in that folder
        ...

**The run lock** is `fcntl.flock` on `<run>/run.lock`, which holds the holder's PID as text. The
kernel drops the lock when the holder's file is closed, i.e. when the process ends however it
ends (SIGKILL included), so a dead run never blocks the next one and no stale-lock guessing is
needed. Two runs on one folder would otherwise delete each other's temporary stage folders.

**The reaper** is a small process started by the CLI (`python -m flows.hygiene PID`), in its own
session so Ctrl-C and a `kill` of the CLI's process group do not reach it. Every 0.5 s it records
the CLI's descendants (psutil, by parent PID, so children started in a new session, such as the
sandbox workers, are included). When the CLI is gone, noticed by EOF on a pipe whose only writer
is the CLI, or by its parent PID changing (a forked child may hold a copy of the pipe), it stops
every recorded process still alive, and the processes they started since: SIGTERM, then SIGKILL
after 3 s. Why a process and not `PR_SET_PDEATHSIG`: the children are started by vLLM, Prefect and
multiprocessing, not by us, so we cannot set it on them; a watcher outside the CLI also covers the
one signal a process cannot handle (SIGKILL). A child started in the last 0.5 s before the CLI died
is still caught if it is in the CLI's process group and was orphaned (its parent is PID 1 or a
recorded process); other members of that group (`| tee log`) are left alone.
"""
from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

LOCK_NAME = "run.lock"
REFRESH_S = 0.5
GRACE_S = 3.0
QUIET = b"q"  # written by the CLI at a normal exit


# ---------------------------------------------------------------------------------------------
# One run per run folder

class RunFolderBusy(RuntimeError):
    pass


def lock_holder(run_dir: Path) -> int | None:
    """The PID holding the run folder's lock, or None when nobody holds it."""
    path = Path(run_dir) / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return _pid_in(path)
    finally:
        os.close(fd)  # also drops the shared lock, if we got it


def busy_message(run_dir: Path, pid: int) -> str:
    """One line: who holds the folder. A holder that has just died may leave a forked child holding
    the lock for the few seconds until the reaper stops it."""
    import psutil

    if psutil.pid_exists(pid):
        return f"{run_dir} is in use by another run (pid {pid}); wait for it to end or stop it"
    return (f"{run_dir} is still held by a process of a run that ended (pid {pid}); "
            "its reaper stops such processes within seconds, try again")


def _pid_in(path: Path) -> int:
    text = path.read_text().strip()
    return int(text) if text.isdigit() else -1


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold `<run_dir>/run.lock` for the block; RunFolderBusy names the holder's PID at once."""
    path = Path(run_dir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by exec'd children
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunFolderBusy(busy_message(run_dir, _pid_in(path))) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a waiting run)


# ---------------------------------------------------------------------------------------------
# SIGTERM like Ctrl-C

class Interrupted(BaseException):
    """Ctrl-C or SIGTERM. Not a KeyboardInterrupt: vLLM 0.32 swallows those while its engine
    starts (`zmq_socket_ctx` catches KeyboardInterrupt around the start-up handshake), so a Ctrl-C
    in that window went unnoticed and the run carried on."""


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM raise Interrupted in the main thread, so a service manager's stop ends
    the command the way Ctrl-C does (stages kept, engine stopped, one line). Prefect's flow engine
    swaps in its own SIGTERM handler while a flow runs and re-sends the signal to this one when it
    ends. A signal the shell told us to ignore (SIGINT of a background job) stays ignored."""
    def interrupt(signum, frame):
        raise Interrupted(signal.Signals(signum).name)
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, interrupt)


# ---------------------------------------------------------------------------------------------
# The reaper

_reaper: subprocess.Popen | None = None


def start_reaper() -> subprocess.Popen:
    """Start the watcher for this process (once); it outlives us only long enough to clean up.

    At a normal exit (atexit: Ctrl-C, errors and SIGTERM included) we tell it so, and it cleans up
    without a word; after SIGKILL or a crash of the interpreter it says what it stopped."""
    global _reaper
    if _reaper is None:
        _reaper = subprocess.Popen([sys.executable, "-m", "flows.hygiene", str(os.getpid())],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
                                   cwd=Path(__file__).resolve().parent.parent)
        atexit.register(_quiet_exit, _reaper)  # registered first, so it runs after Prefect's own
    return _reaper


def _quiet_exit(reaper: subprocess.Popen) -> None:
    with contextlib.suppress(OSError, ValueError):
        reaper.stdin.write(QUIET)
        reaper.stdin.flush()


def watch(parent: int, refresh_s: float = REFRESH_S) -> tuple[list[str], bool]:
    """Record `parent`'s descendants until it is gone, then stop the live ones: (their names,
    whether the parent said it was exiting normally)."""
    import psutil

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        cli = psutil.Process(parent)
        group = parent if os.getpgid(parent) == parent else None
    except (psutil.NoSuchProcess, ProcessLookupError):
        return [], False
    known: dict[int, psutil.Process] = {}
    quiet = False
    while True:
        try:
            kids = cli.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        known = {pid: p for pid, p in known.items() if p.is_running()} | {p.pid: p for p in kids}
        ready, _, _ = select.select([sys.stdin], [], [], refresh_s)
        data = os.read(sys.stdin.fileno(), 4096) if ready else None
        quiet = quiet or QUIET in (data or b"")
        if data == b"" or os.getppid() != parent:
            break
    return stop(_leftovers(known, group, parent)), quiet


def _leftovers(known: dict, group: int | None, parent: int) -> list:
    """Recorded processes still alive, their own descendants, and orphans in the CLI's group."""
    import psutil

    procs = {}
    for p in known.values():
        with contextlib.suppress(psutil.Error):
            if p.is_running():
                procs[p.pid] = p
                procs.update({c.pid: c for c in p.children(recursive=True)})
    if group is not None:
        for p in psutil.process_iter(["ppid"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(p.pid) == group and p.info["ppid"] in (1, parent, *procs) and p.pid != parent:
                    procs.setdefault(p.pid, p)
    procs.pop(os.getpid(), None)
    return [p for p in procs.values() if _alive(p)]


def _alive(p) -> bool:
    """Running and not a zombie (a dead process its new parent has not collected yet)."""
    import psutil
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop(procs: list, grace_s: float = GRACE_S) -> list[str]:
    """SIGTERM, then SIGKILL what is still alive after grace_s; the names of the stopped ones."""
    import psutil

    names = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            names.append(f"{p.name()}[{p.pid}]")
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    return names


if __name__ == "__main__":
    cli_pid = int(sys.argv[1])
    stopped, quiet = watch(cli_pid)
    if stopped and not quiet:
        print(f"selfimprove: pid {cli_pid} ended; stopped {len(stopped)} processes it left: "
              f"{', '.join(stopped[:6])}{' ...' if len(stopped) > 6 else ''}", file=sys.stderr)
