"""Run untrusted, model-written Python in a sandbox (tool-integrated reasoning in `sample`).

    from tasks.sandbox import run_code, SandboxPool, CodeSession
    run_code("print(2**100)").stdout                  # one execution, on a shared default pool
    with SandboxPool(max_workers=4) as pool:          # many executions at once
        results = pool.map(["print(1)", "import sympy; print(sympy.factorint(360))"])
        session = CodeSession(pool, max_calls=4)      # the code cells of one model response
        session.run("x = 6"); session.run("print(x * 7)")   # re-runs `x = 6` silently first
    python -m tasks.sandbox 'print(1 + 1)'            # which backend, and one execution

How it works: a worker is one long-lived sandbox holding a warm "zygote", the venv's Python with
sympy and numpy already imported. Each execution is a fresh child forked from the zygote, in a
fresh temp dir; afterwards every process in the sandbox but the zygote is killed, the writable
tmpfs is wiped and SysV IPC objects are removed. Code and output travel through pipes the host
hands in per execution, never through the zygote's memory, so a later fork cannot find them there.

Guaranteed with the "bwrap" backend (bubblewrap; see sandbox_backend()):
- no network: an own network namespace with only loopback (a kernel boundary, not a Python ban);
- a read-only view of the host, with /root, /home, /work, /opt, /srv, /mnt, /media, /run,
  /var/tmp, this repository and our cwd hidden behind empty read-only tmpfs, except the venv and
  the Python installation, bound back read-only; writable are only the sandbox's own /tmp and
  /dev/shm (tmpfs, 64 MiB each, wiped after every execution; the host's /tmp is not visible);
  cwd, HOME and TMPDIR are a fresh dir in /tmp;
- own PID, IPC, UTS and mount namespaces (our processes are invisible); a fixed minimal
  environment (none of our variables); an unprivileged uid without capabilities, with
  no_new_privs (as root: a uid of its own per worker, as in IOI's isolate);
- per execution: wall-clock timeout, RLIMIT_CPU, RLIMIT_AS (memory_mb on top of the warm
  interpreter), the summed memory (PSS) of its processes polled against memory_mb, RLIMIT_NPROC
  (processes + threads), RLIMIT_NOFILE, RLIMIT_FSIZE, no core dumps; stdout and stderr each capped
  at max_output_bytes (cut with a marker; the writer then gets EPIPE);
- at the end every process the code started is killed, double-forked daemons included (the
  zygote is their subreaper); a zygote that dies or stops answering takes the whole sandbox with
  it and a fresh one starts; sandboxes die with the thread that started them.

Not guaranteed:
- safety from kernel exploits (no seccomp filter; user namespaces can be created inside);
- exact memory limits: PSS is polled every 50 ms, so a fast allocator can briefly exceed
  memory_mb; the hard bound is RLIMIT_AS times RLIMIT_NPROC;
- secrecy of world-readable host files outside the hidden directories (/etc, /usr, /sys, ...);
- a clean slate for kernel state other than files, processes and SysV IPC (e.g. keyrings) between
  executions in the same worker; CPU fairness (a sandbox may use a core for timeout_s, at nice 10);
- much of the above with the fallback backends "unshare" and "plain" (see _LOST; they warn).

`setup` re-runs the code of the earlier calls of a response before the new one, as issue 4
describes Qwen2.5-Math's TIR: the earlier cells run first, in order, output discarded and
exceptions ignored, then `source`, whose output alone is returned; timeout_s covers both. (The
ToRA-style `extract_program(..., last_only=True)` runs only the last block: pass no setup.)
"""
from __future__ import annotations

import atexit
import builtins
import ctypes
import fcntl
import gc
import json
import linecache
import logging
import math
import os
import queue
import resource
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import types
import warnings
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAX_PROCS = 16                  # processes + threads one execution may add
MAX_OPEN_FILES = 64
MAX_FILE_BYTES = 16 << 20       # largest file the code may write
TMPFS_BYTES = 64 << 20          # size of the sandbox's /tmp and /dev/shm
MAX_CODE_BYTES = 1 << 20
GRACE_S = 5.0                   # after timeout_s, how long the host waits before killing a worker
STARTUP_TIMEOUT_S = 120.0
NICE = 10                       # sandboxes yield the CPU to everything else on the machine
# numpy.random is a lazy submodule: imported here, not in every fork that reseeds it (10.9 -> 4.2 ms a run)
WARM_IMPORTS = ("math", "cmath", "fractions", "decimal", "itertools", "functools", "collections",
                "numpy", "numpy.random", "sympy")
HIDDEN_DIRS = ("/root", "/home", "/work", "/opt", "/srv", "/mnt", "/media", "/run", "/var/tmp")
BOX_UID_BASE = 1_900_000_000    # when we are root, worker i runs as uid BOX_UID_BASE + i
TRUNCATED = "\n[... output truncated at {} bytes ...]\n"
_LOST = {
    "unshare": "bubblewrap is unusable, so the sandbox falls back to `unshare` (own network, PID "
               "and IPC namespaces). Lost: the read-only view of the host, hidden home dirs and "
               "working tree, private /tmp. Fix: bash infra/install-sandbox.sh",
    "plain": "neither bubblewrap nor `unshare` works, so sandboxed code runs as a plain process "
             "with rlimits, a clean environment and a temp dir as cwd. Lost: no network "
             "isolation, no process isolation, no read-only or hidden filesystem. "
             "Fix: bash infra/install-sandbox.sh",
}


@dataclass
class ExecResult:
    stdout: str = ""
    stderr: str = ""
    error: str | None = None        # last traceback line, e.g. "ZeroDivisionError: division by zero"
    timed_out: bool = False
    memory_exceeded: bool = False
    output_truncated: bool = False
    exit_code: int | None = None    # of the executing process; negative: killed by that signal
    wall_s: float = 0.0


def _sandbox_env() -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp", "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2"}  # glibc reserves 64 MB of address space per arena


# ---------------------------------------------------------------- backend: which wrapper we use

_backend: str | None = None
_backend_lock = threading.Lock()


def sandbox_backend() -> str:
    """"bwrap", "unshare" or "plain": the best one that runs here (env SELFIMPROVE_SANDBOX_BACKEND
    forces one). Probed once by starting a real worker; a fallback warns what is lost."""
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = _choose_backend()
            if _backend in _LOST:
                warnings.warn(_LOST[_backend], RuntimeWarning, stacklevel=2)
                log.warning(_LOST[_backend])
        return _backend


def _choose_backend() -> str:
    forced = os.environ.get("SELFIMPROVE_SANDBOX_BACKEND")
    for name in [forced] if forced else ["bwrap", "unshare", "plain"]:
        try:
            worker = _Worker(name, warm_imports=(), slot=999)
            ok = worker.run("print('ok')", [], 30.0, 256, 100).stdout == "ok\n"
            worker.close()
            if ok:
                return name
        except Exception as e:  # noqa: BLE001 - any failure means: try the next backend
            log.info("sandbox backend %s unusable: %s", name, e)
    raise RuntimeError("no sandbox backend works here; as root, the Python installation must be "
                       "world-readable unless bubblewrap is installed (bash infra/install-sandbox.sh)")


def _python_dirs() -> list[str]:
    """Directories the sandboxed interpreter needs: the venv and the installation it points to."""
    dirs = sorted({sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent)})
    return [d for d in dirs if not any(d != o and d.startswith(o + "/") for o in dirs)]


def _hidden_dirs() -> list[str]:
    """HIDDEN_DIRS plus this repository and our cwd, wherever they are (/tmp is replaced anyway)."""
    dirs = [*HIDDEN_DIRS, str(Path(__file__).resolve().parents[1]), os.getcwd()]
    dirs = [d for d in dirs if d not in ("/", "/usr", "/etc") and os.path.isdir(d)
            and not any(d.startswith(o) for o in ("/tmp/", "/usr/", "/etc/"))]
    return [d for d in dict.fromkeys(dirs) if d != "/tmp" and not any(d.startswith(o + "/") for o in dirs)]


def _bwrap_args() -> list[str]:
    a = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
         "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--clearenv"]
    if os.geteuid() == 0:  # bwrap keeps just enough to let the zygote drop to its own uid
        a += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        a += ["--unshare-user", "--disable-userns"]
    a += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
          "--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
    hidden, binds = _hidden_dirs(), _python_dirs()
    for d in hidden:
        a += ["--perms", "0755", "--size", "65536", "--tmpfs", d]
    for d in binds:  # bind the interpreter back where it was hidden, through 0755 parents
        top = next((h for h in hidden if d.startswith(h + "/")), None)
        if top is None:
            continue
        parents = [str(p) for p in reversed(Path(d).parents) if str(p).startswith(top + "/")]
        for p in parents:
            a += ["--perms", "0755", "--dir", p]
        a += ["--ro-bind", d, d]
    for d in hidden:
        a += ["--remount-ro", d]
    a += ["--perms", "1777", "--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--chdir", "/tmp"]
    for d in binds:  # an interpreter under /tmp (e.g. a CI clone's venv) goes back over the new /tmp
        if d.startswith("/tmp/"):
            for p in [str(p) for p in reversed(Path(d).parents) if str(p).startswith("/tmp/")]:
                a += ["--perms", "0755", "--dir", p]
            a += ["--ro-bind", d, d]
    for k, v in _sandbox_env().items():
        a += ["--setenv", k, v]
    return a + ["--"]


def _unshare_args() -> list[str]:
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return ["unshare", *user, "--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc"]


def _world_readable(path: str) -> bool:
    p = Path(path).resolve()
    return all(q.stat().st_mode & 0o005 == 0o005 for q in [p, *p.parents])


def _claim_uid(slot: int) -> tuple[int, int]:
    """A uid no other sandbox on this host uses, held by an flock while the worker lives."""
    lock_dir = Path(tempfile.gettempdir()) / "selfimprove-sandbox-uids"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    for uid in range(BOX_UID_BASE + slot, BOX_UID_BASE + 1_000_000, 1000):
        fd = os.open(lock_dir / f"{uid}.lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except BlockingIOError:
            os.close(fd)
    raise RuntimeError(f"no free sandbox uid in {lock_dir}")


# ---------------------------------------------------------------- host side: one worker

class _Worker:
    """One sandbox with a warm zygote. Used by one thread at a time."""

    def __init__(self, backend: str, warm_imports: Sequence[str], slot: int):
        self.backend, self.alive, self.scratch = backend, False, None
        root = os.geteuid() == 0
        self.uid, self._uid_lock = _claim_uid(slot) if root else (None, None)
        if backend != "bwrap":  # the fallbacks share the host's filesystem: a scratch dir of our own
            if root and not all(_world_readable(d) for d in _python_dirs()):
                self.close()
                raise RuntimeError("as root without bubblewrap, the sandbox needs a world-readable Python")
            self.scratch = tempfile.mkdtemp(prefix="selfimprove-sandbox-")
            if root:
                os.chown(self.scratch, self.uid, self.uid)
        prefix = {"bwrap": _bwrap_args, "unshare": _unshare_args, "plain": list}[backend]()
        host_end, box_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cfg = {"ctl_fd": box_end.fileno(), "uid": self.uid, "warm_imports": list(warm_imports),
               "scratch": self.scratch or "/tmp",
               "wipe": [self.scratch] if self.scratch else ["/tmp", "/dev/shm"],
               "keep": _kept_tmp_entries() if backend == "bwrap" else [],
               "private_ns": backend != "plain"}
        argv = [*prefix, sys.executable, "-I", "-c", Path(__file__).read_text(), "--zygote", json.dumps(cfg)]
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, pass_fds=[box_end.fileno()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._log,
                                     env=_sandbox_env(), start_new_session=True)
        box_end.close()
        self.ctl = host_end
        ready = select.select([self.ctl], [], [], STARTUP_TIMEOUT_S)[0] and self.ctl.recv(65536)
        if not ready:
            self._log.seek(0)
            err = self._log.read().decode(errors="replace")[-2000:]
            self.close()
            raise RuntimeError(f"sandbox worker ({backend}) did not start: {err}")
        self.alive, self.info = True, json.loads(ready)
        if self.info["threads"] > 1:
            log.warning("sandbox zygote has %d threads after its imports; forking it is unsafe",
                        self.info["threads"])

    def run(self, source: str, cells: list[str], timeout_s: float, memory_mb: int,
            max_output_bytes: int) -> ExecResult:
        start = time.monotonic()
        payload = json.dumps({"setup": cells, "source": source}).encode()
        code_r, code_w = os.pipe()
        try:
            capacity = fcntl.fcntl(code_w, fcntl.F_SETPIPE_SZ, MAX_CODE_BYTES)
        except OSError:
            capacity = 1 << 16
        if len(payload) > capacity:
            os.close(code_r), os.close(code_w)
            return ExecResult(error=f"code too large: {len(payload)} bytes, limit {capacity}")
        view = memoryview(payload)
        while view:
            view = view[os.write(code_w, view):]
        os.close(code_w)
        (out_r, out_w), (err_r, err_w), (res_r, res_w) = os.pipe(), os.pipe(), os.pipe()
        request = {"timeout_s": timeout_s, "memory_mb": memory_mb}
        box_fds = [code_r, out_w, err_w, res_w]
        try:
            socket.send_fds(self.ctl, [json.dumps(request).encode()], box_fds)
        except OSError:
            self.alive = False
        for fd in box_fds:
            os.close(fd)
        reply, bufs, cut = self._collect(out_r, err_r, res_r, max_output_bytes, start + timeout_s + GRACE_S)
        if reply is None or not reply["clean"]:
            self.kill()
        return _result(reply, bufs, cut, timeout_s, memory_mb, max_output_bytes, time.monotonic() - start)

    def _collect(self, out_r, err_r, res_r, cap, deadline):
        """Read the three pipes (up to cap bytes each) and the zygote's reply until all are done."""
        bufs = {out_r: bytearray(), err_r: bytearray(), res_r: bytearray()}
        cut = {out_r: False, err_r: False}
        reply = None
        sel = selectors.DefaultSelector()
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        if self.alive:
            sel.register(self.ctl, selectors.EVENT_READ)
        while sel.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                if key.fileobj is self.ctl:
                    sel.unregister(self.ctl)
                    msg = self.ctl.recv(65536)
                    reply, self.alive = (json.loads(msg), True) if msg else (None, False)
                    continue
                chunk = os.read(key.fd, 1 << 16)
                room = (cap if key.fd != res_r else 1 << 16) - len(bufs[key.fd])
                bufs[key.fd] += chunk[:max(room, 0)]
                if not chunk or len(chunk) > room:
                    cut[key.fd] = bool(chunk) and key.fd != res_r
                    sel.unregister(key.fd)
                    os.close(key.fd)
        for key in list(sel.get_map().values()):
            if key.fileobj is not self.ctl:
                os.close(key.fd)
        sel.close()
        return reply, [bytes(bufs[out_r]), bytes(bufs[err_r]), bytes(bufs[res_r])], [cut[out_r], cut[err_r]]

    def kill(self) -> None:
        """Kill the whole sandbox (bwrap's PID 1 takes every process inside with it)."""
        self.alive = False
        if getattr(self, "proc", None) is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.uid is not None:  # wait for stragglers of the dying PID namespace
            for _ in range(500):
                if not _pids_of_uid(self.uid):
                    break
                time.sleep(0.01)

    def close(self) -> None:
        self.kill()
        if getattr(self, "ctl", None) is not None:
            self.ctl.close()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
        if self._uid_lock is not None:
            os.close(self._uid_lock)
            self._uid_lock = None


def _pids_of_uid(uid: int) -> list[int]:
    return [pid for pid in _all_pids() if _real_uid(pid) == uid]


def _result(reply, bufs, cut, timeout_s, memory_mb, cap, wall_s) -> ExecResult:
    out, err, res = bufs
    try:
        res = json.loads(res) if res else {}
    except ValueError:
        res = {}
    r = ExecResult(stdout=out.decode(errors="replace") + (TRUNCATED.format(cap) if cut[0] else ""),
                   stderr=err.decode(errors="replace") + (TRUNCATED.format(cap) if cut[1] else ""),
                   error=res.get("error"), output_truncated=any(cut), wall_s=wall_s)
    if reply is None:
        r.timed_out = wall_s >= timeout_s
        r.error = ("TimeoutError: the sandbox stopped answering" if r.timed_out else
                   "SandboxError: the sandbox worker died (the code killed it?)")
        return r
    r.exit_code, r.timed_out = reply["exit_code"], reply["timed_out"]
    r.memory_exceeded = reply["memory_exceeded"] or bool(res.get("memory_error"))
    if r.timed_out:
        r.error = f"TimeoutError: execution exceeded {timeout_s:g} s"
    elif reply["memory_exceeded"]:
        r.error = f"MemoryError: the processes used more than {memory_mb} MB"
    elif r.output_truncated and (r.exit_code == -signal.SIGPIPE
                                 or (r.error or "").startswith("BrokenPipeError")):
        r.error = f"OutputLimitError: more than {cap} bytes of output; execution stopped"
    elif r.error is None and r.exit_code is not None and r.exit_code < 0:
        try:
            r.error = f"killed by {signal.Signals(-r.exit_code).name}"
        except ValueError:
            r.error = f"killed by signal {-r.exit_code}"
    return r


# ---------------------------------------------------------------- host side: pool and session

class SandboxPool:
    """max_workers warm sandboxes serving executions concurrently. Each worker lives in its own
    thread for the pool's lifetime (bwrap dies with the thread that started it)."""

    def __init__(self, max_workers: int | None = None, *, warm_imports: Sequence[str] = WARM_IMPORTS):
        self.backend = sandbox_backend()
        self.max_workers = max_workers or os.cpu_count() or 1
        self._warm_imports = tuple(warm_imports)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._threads = [threading.Thread(target=self._serve, args=(i,), daemon=True,
                                          name=f"sandbox-{i}") for i in range(self.max_workers)]
        for t in self._threads:
            t.start()

    def submit(self, source: str, *, setup: str | Sequence[str] = "", timeout_s: float = 5.0,
               memory_mb: int = 512, max_output_bytes: int = 65536) -> Future:
        if self._closed:
            raise RuntimeError("SandboxPool is closed")
        if timeout_s <= 0 or memory_mb <= 0 or max_output_bytes <= 0:
            raise ValueError("timeout_s, memory_mb and max_output_bytes must be positive")
        cells = [setup] if isinstance(setup, str) else list(setup)
        future: Future = Future()
        self._jobs.put((future, (source, [c for c in cells if c], timeout_s, memory_mb, max_output_bytes)))
        return future

    def run(self, source: str, **limits) -> ExecResult:
        return self.submit(source, **limits).result()

    def map(self, sources: Sequence[str], *, setups: Sequence[str | Sequence[str]] | None = None,
            **limits) -> list[ExecResult]:
        setups = setups if setups is not None else [""] * len(sources)
        futures = [self.submit(s, setup=p, **limits) for s, p in zip(sources, setups, strict=True)]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join()

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _serve(self, slot: int) -> None:
        worker = None
        try:
            worker = _Worker(self.backend, self._warm_imports, slot)  # warm up before the first job
        except Exception as e:  # noqa: BLE001 - retried when a job arrives
            log.warning("sandbox worker %d failed to start: %s", slot, e)
        while (job := self._jobs.get()) is not None:
            future, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                if worker is None or not worker.alive or worker.proc.poll() is not None:
                    if worker is not None:
                        worker.close()
                    worker = None
                    worker = _Worker(self.backend, self._warm_imports, slot)
                future.set_result(worker.run(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                future.set_exception(e)
        if worker is not None:
            worker.close()


_default_pool: SandboxPool | None = None
_default_lock = threading.Lock()


def run_code(source: str, *, timeout_s: float = 5.0, memory_mb: int = 512,
             max_output_bytes: int = 65536, setup: str | Sequence[str] = "") -> ExecResult:
    """Run `source` in a fresh sandboxed process (from a shared default pool) and return its result."""
    global _default_pool
    with _default_lock:
        if _default_pool is None:
            _default_pool = SandboxPool()
            atexit.register(_default_pool.close)
    return _default_pool.run(source, setup=setup, timeout_s=timeout_s, memory_mb=memory_mb,
                             max_output_bytes=max_output_bytes)


class CodeSession:
    """The code cells of one response: each run() re-runs the earlier cells silently, then the new
    one. After max_calls executions, run() returns an error result without executing."""

    def __init__(self, pool: SandboxPool | None = None, *, max_calls: int = 4, **limits):
        self.pool, self.max_calls, self.limits = pool, max_calls, limits
        self.cells: list[str] = []

    def run(self, cell: str) -> ExecResult:
        if len(self.cells) >= self.max_calls:
            return ExecResult(error=f"CallLimitError: at most {self.max_calls} code executions per response")
        result = (self.pool.run if self.pool else run_code)(cell, setup=list(self.cells), **self.limits)
        self.cells.append(cell)
        return result


# ---------------------------------------------------------------- inside the sandbox: the zygote

def _zygote_main(cfg: dict) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(38, 1, 0, 0, 0)                   # PR_SET_NO_NEW_PRIVS
    if cfg["uid"] is not None:                   # root outside: become this worker's own uid
        os.setgroups([])
        os.setresgid(cfg["uid"], cfg["uid"], cfg["uid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
    os.nice(NICE)
    libc.prctl(4, 0, 0, 0, 0)                    # PR_SET_DUMPABLE 0: no core dumps, no ptrace of us
    libc.prctl(36, 1, 0, 0, 0)                   # PR_SET_CHILD_SUBREAPER: orphans come back to us
    for name in cfg["warm_imports"]:
        try:
            __import__(name)
        except ImportError:
            pass
    gc.collect()
    gc.freeze()                                  # fewer copy-on-write pages in each fork
    ctl = socket.socket(fileno=cfg["ctl_fd"])
    me = os.getuid()
    cfg["base_tasks"] = sum(len(os.listdir(f"/proc/{p}/task")) for p in _pids_of_uid(me))
    cfg["rss_kb"] = _status_kb(os.getpid(), "VmRSS")
    ctl.send(json.dumps({"threads": len(os.listdir("/proc/self/task")), **cfg}).encode())
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, 65536, 4)
        if not msg:
            return
        ctl.send(json.dumps(_serve_one(json.loads(msg), fds, cfg, ctl)).encode())


def _serve_one(req: dict, fds: list[int], cfg: dict, ctl: socket.socket) -> dict:
    workdir = os.path.join(cfg["scratch"], "run")
    os.mkdir(workdir, 0o700)
    pid = os.fork()
    if pid == 0:
        try:
            ctl.close()
            _child(req, fds, workdir, cfg)
        finally:
            os._exit(70)
    for fd in fds:
        os.close(fd)
    timed_out = memory_exceeded = False
    budget_kb = (req["memory_mb"] << 10) + cfg["rss_kb"]
    deadline = time.monotonic() + req["timeout_s"]
    pidfd = os.pidfd_open(pid)
    while not select.select([pidfd], [], [], min(max(deadline - time.monotonic(), 0), 0.05))[0]:
        if time.monotonic() >= deadline:
            timed_out = True
        elif _pss_kb(_descendants(os.getpid())) > budget_kb:
            memory_exceeded = True
        else:
            continue
        os.kill(pid, signal.SIGKILL)
        break
    os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    timed_out |= usage.ru_utime + usage.ru_stime >= math.ceil(req["timeout_s"]) + 1
    clean = _kill_descendants()
    clean &= all(_wipe(d, cfg.get("keep", [])) for d in cfg["wipe"])
    if cfg["private_ns"]:
        _remove_sysv_ipc()
    return {"exit_code": os.waitstatus_to_exitcode(status), "timed_out": timed_out,
            "memory_exceeded": memory_exceeded, "clean": clean}


def _child(req: dict, fds: list[int], workdir: str, cfg: dict) -> None:
    code_fd, out_fd, err_fd, res_fd = fds
    os.setsid()
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)      # PR_SET_DUMPABLE 1, so the zygote can read our PSS
    with os.fdopen(code_fd, "rb") as f:
        job = json.loads(f.read())
    devnull = os.open(os.devnull, os.O_RDWR)
    # fds 0-2: /dev/null for now; 3: result, 4-5: the real stdout/stderr (moved high first, as the
    # received fd numbers may collide with the targets)
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in (devnull, res_fd, out_fd, err_fd)]
    for target, fd in enumerate([high[0], high[0], high[0], *high[1:]]):
        os.dup2(fd, target, inheritable=target < 3)
    os.closerange(6, 1 << 16)
    os.chdir(workdir)
    os.environ.update(HOME=workdir, TMPDIR=workdir, PWD=workdir)
    _set_limits(req, cfg)
    if "numpy" in sys.modules:                       # `random` reseeds itself after a fork; numpy not
        sys.modules["numpy"].random.seed()
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    for i, cell in enumerate(job["setup"]):          # earlier cells: silent, errors ignored
        try:
            exec(_compile(cell, f"<cell {i + 1}>"), main.__dict__)
        except BaseException:  # noqa: BLE001
            pass
    _flush()
    os.dup2(4, 1), os.dup2(5, 2), os.close(4), os.close(5)
    error, memory_error, code = None, False, 0
    try:
        exec(_compile(job["source"], "<cell>"), main.__dict__)
        for t in threading.enumerate():
            if t is not threading.current_thread() and not t.daemon:
                t.join()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException as e:  # noqa: BLE001 - reported like Python would, plus a summary
        code, memory_error = 1, isinstance(e, MemoryError)
        try:
            error = traceback.format_exception_only(type(e), e)[-1].strip()
            traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        except BaseException:  # noqa: BLE001
            error = error or type(e).__name__
    _flush()
    try:
        os.write(3, json.dumps({"error": error, "memory_error": memory_error}).encode())
    except OSError:
        pass
    os._exit(code & 0xFF)


def _set_limits(req: dict, cfg: dict) -> None:
    vm = _status_kb(os.getpid(), "VmSize") << 10     # the warm interpreter we were forked from
    cpu = math.ceil(req["timeout_s"]) + 1
    for res, soft, hard in ((resource.RLIMIT_CPU, cpu, cpu + 1),
                            (resource.RLIMIT_AS, vm + (req["memory_mb"] << 20), None),
                            (resource.RLIMIT_NPROC, cfg["base_tasks"] + MAX_PROCS, None),
                            (resource.RLIMIT_NOFILE, MAX_OPEN_FILES, None),
                            (resource.RLIMIT_FSIZE, MAX_FILE_BYTES, None),
                            # 1, not 0: the kernel ignores 0 when core_pattern is a pipe
                            (resource.RLIMIT_CORE, 1, None), (resource.RLIMIT_MSGQUEUE, 0, None)):
        hard = soft if hard is None else hard
        cap = resource.getrlimit(res)[1]
        if cap != resource.RLIM_INFINITY:
            soft, hard = min(soft, cap), min(hard, cap)
        resource.setrlimit(res, (soft, hard))


def _compile(source: str, name: str):
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    return compile(source, name, "exec")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream
            pass


def _all_pids() -> list[int]:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def _real_uid(pid: int) -> int | None:
    """From status, not stat(): /proc/<pid> of a non-dumpable process belongs to root."""
    try:
        return _status_kb(pid, "Uid")
    except (OSError, StopIteration):
        return None


def _status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), ()):
            found.append(c)
            todo.append(c)
    return found


def _pss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
        except OSError:
            pass
    return total


def _kill_descendants() -> bool:
    """SIGKILL every process below us (orphans are reparented to us) until none is left."""
    for _ in range(200):
        pids = _descendants(os.getpid())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not pids:
            return True
        time.sleep(0.005)
    return False


def _wipe(top: str, keep: list[str] = ()) -> bool:
    """Empty a writable dir, even if the code chmod-ed things inside it to 000; `keep` names the
    top-level entries of /tmp that hold our read-only interpreter (see _kept_tmp_entries)."""
    keep = set(keep) if top == "/tmp" else set()
    for root, dirs, _ in os.walk(top):
        if root == top:
            dirs[:] = [d for d in dirs if d not in keep]
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                try:
                    os.chmod(p, 0o700)
                except OSError:
                    pass
    for name in os.listdir(top):
        if name in keep:
            continue
        p = os.path.join(top, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        except OSError:
            pass
    return not [n for n in os.listdir(top) if n not in keep]


def _kept_tmp_entries() -> list[str]:
    """Top-level /tmp names under which the interpreter is bound back into the sandbox."""
    return sorted({Path(d).parts[2] for d in _python_dirs() if d.startswith("/tmp/")})


def _remove_sysv_ipc() -> None:
    """SysV shared memory, semaphores and message queues outlive processes: remove ours."""
    libc = ctypes.CDLL(None, use_errno=True)
    for kind, rmid in (("shm", lambda i: libc.shmctl(i, 0, None)), ("msg", lambda i: libc.msgctl(i, 0, None)),
                       ("sem", lambda i: libc.semctl(i, 0, 0))):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                ids = [int(line.split()[1]) for line in f.read().splitlines()[1:] if line.strip()]
        except OSError:
            continue
        for i in ids:
            rmid(i)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zygote"]:
        _zygote_main(json.loads(sys.argv[2]))
    else:
        logging.basicConfig(level=logging.INFO)
        print("backend:", sandbox_backend())
        print(run_code(sys.argv[1] if len(sys.argv) > 1 else "print('hello from the sandbox')"))
