"""Killable worker processes for the `verify` stage: small JSON jobs, a hard wall-clock limit each.

`run_jobs(jobs, workers=..., timeout_s=...)` sends each job (a JSON-able dict) to one of a few
`python -m tasks.verify_pool` processes, which answer with `tasks.verify.handle_job(job)`. A job
that overruns its limit has its worker killed (SIGKILL) and replaced, and comes back as
("timeout", None); so sympy stuck on 10^{10^{10^{10}}} costs one item, never a hang.

Why processes and not threads or signals: math-verify's own timeouts use signal.alarm, which only
works on the main thread and cannot interrupt a long C-level big-integer operation; a process can
always be killed. Workers run their jobs on their own main thread with math-verify's timeouts off,
so `run_jobs` is safe from any thread (Prefect task runners, GRPO reward functions). Workers are
plain subprocesses, not multiprocessing children, so daemonic callers and scripts without a
`__main__` guard work too. Warm workers are kept between calls (importing sympy costs ~1 s).
"""

import atexit
import collections
import json
import os
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STARTUP_S = 120.0  # a fresh worker imports sympy and math-verify before it says it is ready
MEMORY_BYTES = 4 << 30  # address-space cap per worker: a runaway big integer fails, not the host
MAX_START_FAILURES = 3


@dataclass
class _Worker:
    proc: subprocess.Popen
    buffer: bytes = b""
    ready: bool = False
    dead: bool = False
    job: int | None = None
    deadline: float = 0.0
    started: float = field(default_factory=time.monotonic)


_LOCK = threading.Lock()  # one batch drives the pool at a time; callers in other threads wait
_IDLE: list[_Worker] = []
_OWNER = os.getpid()


def run_jobs(jobs: list[dict], *, workers: int | None, timeout_s: float) -> list[tuple]:
    """One (outcome, value) per job, in order: ("ok", result), ("timeout", None) or
    ("error", message). workers=None uses one per CPU; workers=0 runs nothing (all "error")."""
    if not jobs:
        return []
    if workers == 0:
        return [("error", "workers=0: no worker processes")] * len(jobs)
    count = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    with _LOCK:
        pool = _take(count)
        try:
            return _drive(pool, jobs, timeout_s)
        finally:
            _IDLE.extend(w for w in pool if not w.dead and w.job is None)
            for w in pool:
                if w.dead or w.job is not None:
                    _kill(w)


def _take(count: int) -> list[_Worker]:
    global _OWNER
    if os.getpid() != _OWNER:  # a forked child must not share its parent's workers
        _IDLE.clear()
        _OWNER = os.getpid()
    live = [w for w in _IDLE if w.proc.poll() is None]
    for w in _IDLE:
        if w not in live:
            _kill(w)
    _IDLE.clear()
    _IDLE.extend(live[count:])
    return live[:count] + [_spawn() for _ in range(count - len(live[:count]))]


def _spawn() -> _Worker:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "tasks.verify_pool"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    os.set_blocking(proc.stdout.fileno(), False)
    return _Worker(proc)


def _kill(w: _Worker) -> None:
    w.dead = True
    if w.proc.poll() is None:
        w.proc.kill()
    for pipe in (w.proc.stdin, w.proc.stdout):
        try:
            pipe.close()
        except OSError:
            pass
    try:
        w.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _drive(pool: list[_Worker], jobs: list[dict], timeout_s: float) -> list[tuple]:
    results: list[tuple | None] = [None] * len(jobs)
    queue = collections.deque(range(len(jobs)))
    retried: set[int] = set()
    failures = 0
    with selectors.DefaultSelector() as selector:
        for w in pool:
            selector.register(w.proc.stdout, selectors.EVENT_READ, w)
        while queue or any(w.job is not None for w in pool):
            for w in pool:
                if w.ready and w.job is None and queue:
                    _send(w, queue.popleft(), jobs, timeout_s, queue)
            for key, _ in selector.select(timeout=_wait_s(pool)):
                _read(key.data, results)
            for i, w in enumerate(pool):
                failures += _reap(w, results, queue, retried)
                if w.dead:
                    selector.unregister(w.proc.stdout)
                    _kill(w)
                    pool[i] = _spawn()
                    selector.register(pool[i].proc.stdout, selectors.EVENT_READ, pool[i])
            if failures >= MAX_START_FAILURES:  # workers cannot start here: fail, do not spin
                while queue:
                    results[queue.popleft()] = ("error", "verify worker failed to start")
    return results


def _wait_s(pool: list[_Worker]) -> float:
    now = time.monotonic()
    limits = [w.deadline for w in pool if w.job is not None]
    limits += [w.started + STARTUP_S for w in pool if not w.ready]
    return max(0.0, min(limits) - now) if limits else 0.05


def _send(w: _Worker, index: int, jobs: list[dict], timeout_s: float, queue) -> None:
    line = json.dumps({"id": index, **jobs[index]}).encode() + b"\n"
    w.job, w.deadline = index, time.monotonic() + timeout_s
    try:
        w.proc.stdin.write(line)
        w.proc.stdin.flush()
    except (BrokenPipeError, OSError):
        w.dead, w.job = True, None
        queue.appendleft(index)


def _read(w: _Worker, results: list) -> None:
    try:
        data = os.read(w.proc.stdout.fileno(), 1 << 16)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        w.dead = True
        return
    w.buffer += data
    while b"\n" in w.buffer:
        line, w.buffer = w.buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:  # stray output of a library: not ours
            continue
        if message.get("ready"):
            w.ready = True
        elif message.get("id") == w.job:
            results[w.job] = ("ok", message["r"]) if "r" in message else ("error", message["e"])
            w.job = None


def _reap(w: _Worker, results: list, queue, retried: set[int]) -> int:
    """Mark an overrun or dead worker; 1 if it died before it was ready. A job whose worker died
    (not overran) is retried once: workers also die when the thread that started them exits."""
    now = time.monotonic()
    if w.job is not None and now > w.deadline:
        results[w.job], w.job, w.dead = ("timeout", None), None, True
    elif w.job is not None and w.dead:
        if w.job in retried:
            results[w.job] = ("error", "verify worker died")
        else:
            retried.add(w.job)
            queue.appendleft(w.job)
        w.job = None
    if not w.ready and not w.dead and now > w.started + STARTUP_S:
        w.dead = True
    return int(w.dead and not w.ready)


@atexit.register
def _shutdown() -> None:
    for w in _IDLE:
        _kill(w)
    _IDLE.clear()


# ---------------------------------------------------------------------------------------------
# The worker process


def _serve() -> None:
    _limit_self()
    from tasks.verify import handle_job  # imports sympy and math-verify once, before "ready"

    handle_job({"kind": "eq", "pred": "\\frac{\\sqrt{2}}{2}", "gold": "\\frac{1}{\\sqrt{2}}"})
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        job = json.loads(line)
        try:
            message = {"id": job["id"], "r": handle_job(job)}
        except Exception as exc:  # RecursionError, MemoryError, sympy's own errors
            message = {"id": job["id"], "e": f"{type(exc).__name__}: {exc}"[:300]}
        out.write(json.dumps(message).encode() + b"\n")
        out.flush()


def _limit_self() -> None:
    """Cap memory, and die with the parent (Linux) so a stuck worker never outlives it."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    _serve()
