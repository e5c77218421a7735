"""tasks/sandbox.py: hostile programs stay contained, ordinary math code runs, sessions re-run cells.

    .venv/bin/python -m pytest tests/test_sandbox.py -q

Every hostile program runs through one shared pool; after each we assert that no process of it is
left, that canary files in the repo, in $HOME and in tmp_path are unchanged, and that the pool
still answers. Assertions are on flags (timed_out, memory_exceeded, ...), never on seconds.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tasks.sandbox import BOX_UID_BASE, CodeSession, ExecResult, SandboxPool, sandbox_backend

REPO = Path(__file__).resolve().parents[1]
SECRET = f"fake-secret-{uuid.uuid4().hex}"
SYMPY_INIT = Path(importlib.util.find_spec("sympy").origin)  # the venv file a program tries to tamper with


@pytest.fixture(scope="module")
def pool():
    os.environ["SELFIMPROVE_TEST_SECRET"] = SECRET  # must never be visible inside
    with SandboxPool(max_workers=2) as p:
        yield p
    del os.environ["SELFIMPROVE_TEST_SECRET"]


@pytest.fixture
def canaries(tmp_path):
    """Files a hostile program will try to change; returns {placeholder: path}."""
    tag = uuid.uuid4().hex[:8]
    paths = {"@TMP_CANARY@": tmp_path / "canary.txt",
             "@REPO_CANARY@": REPO / f".sandbox-canary-{tag}",
             "@HOME_CANARY@": Path.home() / f".sandbox-canary-{tag}"}
    for p in paths.values():
        p.write_text(f"canary {SECRET}\n")
    yield paths
    for p in paths.values():
        p.unlink(missing_ok=True)


def leftovers(marker: str) -> list[str]:
    """Processes a sandboxed program left behind: its marker in a command line, or (when we are
    root, so each worker has its own uid) a sandbox-uid process below us whose parent is one too;
    the zygotes themselves have bwrap (root) as parent."""
    procs = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{name}/status").read_text()
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        procs[int(name)] = (int(fields["PPid"]), int(fields["Uid"].split()[0]), cmd)
    def boxed(uid: int) -> bool:
        return os.geteuid() == 0 and uid >= BOX_UID_BASE

    def ours(pid: int) -> bool:  # a descendant of this test process (not someone else's sandbox)
        while pid in procs and pid > 1:
            pid = procs[pid][0]
            if pid == os.getpid():
                return True
        return False

    return [f"{pid}: {cmd[:80]}" for pid, (ppid, uid, cmd) in procs.items()
            if (marker in cmd and pid != os.getpid())
            or (boxed(uid) and ppid in procs and boxed(procs[ppid][1]) and ours(pid))]


def assert_contained(pool: SandboxPool, canaries: dict, marker: str, venv_digest: str) -> None:
    assert leftovers(marker) == []
    for p in canaries.values():
        assert p.read_text() == f"canary {SECRET}\n"
    assert not list(REPO.glob("pwned*")) and not list(Path.home().glob("pwned*"))
    assert hashlib.sha256(SYMPY_INIT.read_bytes()).hexdigest() == venv_digest
    assert pool.run("print('still serving')").stdout == "still serving\n"


# Each case: (name, source, limits, check on the ExecResult). @MARKER@ and the canary
# placeholders are substituted before running; programs print what they managed to do.
HOSTILE = [
    ("infinite_loop", "while True: pass", {}, lambda r: r.timed_out and r.exit_code == -9),
    ("fork_bomb", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", {},
     lambda r: r.timed_out),
    ("shell_fork_bomb", "import subprocess\nsubprocess.run(['bash', '-c', ':(){ :|:& };: # @MARKER@'])", {},
     lambda r: r.timed_out or r.exit_code is not None),
    ("memory_bomb", "x = []\nwhile True: x.append(bytearray(16 << 20))", {"memory_mb": 256},
     lambda r: r.memory_exceeded),
    ("forked_memory_bomb", "import os, time\nfor _ in range(15):\n    if os.fork() == 0: break\n"
     "x = bytearray(100 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\ntime.sleep(5)",
     {"memory_mb": 256}, lambda r: r.memory_exceeded),
    ("thread_bomb", "import threading, time\nwhile True:\n"
     "    threading.Thread(target=time.sleep, args=(100,), daemon=True).start()", {},
     lambda r: r.error and "can't start new thread" in r.error),
    ("write_repo", "from pathlib import Path\nfor p in ['@REPO_CANARY@', '@REPO@/pwned.py']:\n"
     "    try: Path(p).write_text('pwned'); print('WROTE', p)\n    except OSError as e: print(type(e).__name__)",
     {}, lambda r: "WROTE" not in r.stdout),
    ("delete_repo_files", "import os, shutil\nfor p in ['@REPO_CANARY@', '@REPO@/pyproject.toml']:\n"
     "    try: os.remove(p); print('DELETED', p)\n    except OSError as e: print(type(e).__name__)\n"
     "shutil.rmtree('@REPO@/tasks', ignore_errors=True)", {}, lambda r: "DELETED" not in r.stdout),
    ("write_home", "import os\nfor p in ['@HOME_CANARY@', '@HOME@/pwned.sh']:\n"
     "    try: open(p, 'w').write('pwned'); print('WROTE', p)\n    except OSError as e: print(type(e).__name__)",
     {}, lambda r: "WROTE" not in r.stdout),
    ("delete_home_canary", "import os\ntry: os.remove('@HOME_CANARY@'); print('DELETED')\n"
     "except OSError as e: print(type(e).__name__)", {}, lambda r: "DELETED" not in r.stdout),
    ("write_tmp_path_canary", "import os\nos.makedirs(os.path.dirname('@TMP_CANARY@'), exist_ok=True)\n"
     "open('@TMP_CANARY@', 'w').write('pwned')", {}, lambda r: True),
    ("tamper_venv", "import sympy\ntry: open(sympy.__file__, 'a').write('pwned = 1'); print('WROTE')\n"
     "except OSError as e: print(type(e).__name__)", {}, lambda r: "WROTE" not in r.stdout),
    ("env_secret", "import os, glob\nprint(dict(os.environ))\nfor p in glob.glob('/proc/*/environ'):\n"
     "    try: print(open(p, 'rb').read())\n    except OSError: pass", {},
     lambda r: "SELFIMPROVE_TEST_SECRET" not in r.stdout and "fake-secret" not in r.stdout),
    ("read_working_tree", "import os\nprint(os.listdir('@REPO@'))\n"
     "for p in ['@REPO_CANARY@', '@REPO@/pyproject.toml', '@HOME_CANARY@']:\n"
     "    try: print(open(p).read())\n    except OSError as e: print(type(e).__name__)", {},
     lambda r: "fake-secret" not in r.stdout and "selfimprove" not in r.stdout),
    ("socket_localhost", "import socket\ns = socket.socket()\ns.settimeout(3)\n"
     "try: s.connect(('127.0.0.1', @PORT@)); print('CONNECTED')\nexcept OSError as e: print(type(e).__name__)",
     {}, lambda r: "CONNECTED" not in r.stdout),
    ("socket_public", "import socket, errno\ns = socket.socket()\ns.settimeout(3)\n"
     "try: s.connect(('1.1.1.1', 53)); print('CONNECTED')\nexcept OSError as e: print(errno.errorcode.get(e.errno))",
     {}, lambda r: r.stdout.strip() == "ENETUNREACH"),
    ("abstract_unix_socket", "import socket\ns = socket.socket(socket.AF_UNIX)\n"
     "try: s.connect('\\0@ABSTRACT@'); print('CONNECTED')\nexcept OSError as e: print(type(e).__name__)",
     {}, lambda r: "CONNECTED" not in r.stdout),
    ("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nimport time; time.sleep(5)",
     {}, lambda r: r.error is not None),
    ("kill_everything", "import os, signal\ntry: os.kill(1, signal.SIGKILL)\nexcept OSError: pass\n"
     "os.kill(-1, signal.SIGKILL)", {}, lambda r: r.error is not None),
    ("stop_parent", "import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)",
     {"timeout_s": 1.0}, lambda r: r.timed_out),
    ("sys_exit", "import sys\nprint('bye')\nsys.exit(3)", {}, lambda r: r.exit_code == 3 and r.stdout == "bye\n"),
    ("print_100mb", "print('x' * 100_000_000)", {},
     lambda r: r.output_truncated and len(r.stdout) < 70_000 and "truncated" in r.stdout),
    ("print_forever_ignoring_epipe", "while True:\n    try: print('y' * 1000)\n    except BrokenPipeError: pass",
     {}, lambda r: r.output_truncated and r.timed_out),
    ("deep_recursion", "def f(n): return f(n + 1)\nf(0)", {}, lambda r: r.error.startswith("RecursionError")),
    ("deep_recursion_no_limit", "import sys\nsys.setrecursionlimit(10**8)\ndef f(n): return f(n + 1)\nf(0)",
     {}, lambda r: r.exit_code != 0),
    ("ctypes_segfault", "import ctypes\nctypes.string_at(0)", {},
     lambda r: r.exit_code == -11 and r.error == "killed by SIGSEGV"),
    ("double_fork_daemon", "import os, subprocess, time\nif os.fork() == 0:\n    os.setsid()\n"
     "    if os.fork() == 0:\n        subprocess.Popen(['sh', '-c', 'sleep 300 # @MARKER@'])\n"
     "        time.sleep(300)\n    os._exit(0)\ntime.sleep(0.5)\nprint('parent done')", {},
     lambda r: r.stdout == "parent done\n"),
    ("ignore_sigterm_sigxcpu", "import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, signal.SIGHUP):\n"
     "    signal.signal(s, signal.SIG_IGN)\nwhile True: pass", {}, lambda r: r.timed_out and r.exit_code == -9),
    ("cpu_threads", "import threading\ndef spin():\n    while True: pass\n"
     "for _ in range(4): threading.Thread(target=spin).start()", {}, lambda r: r.timed_out),
    ("huge_int_power", "x = 10 ** (10 ** 10)", {"memory_mb": 256}, lambda r: r.timed_out or r.memory_exceeded),
    ("huge_int_str", "import sys\nsys.set_int_max_str_digits(0)\nprint(len(str(7 ** (10 ** 7))))", {},
     lambda r: r.timed_out or r.memory_exceeded),
    ("big_file", "open('big', 'wb').write(b'x' * (200 << 20))", {},
     lambda r: r.error is not None and not r.timed_out),
    ("fill_tmpfs", "import os\nfor i in range(100):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (10 << 20))", {},
     lambda r: r.error is not None and "No space left" in r.error),
    ("many_open_files", "fs = [open('/dev/null') for _ in range(10_000)]", {},
     lambda r: r.error is not None and "Too many open files" in r.error),
    ("become_root", "import os\ntry: os.setuid(0); print('ROOT')\nexcept OSError as e: print(type(e).__name__)\n"
     "try: print(open('/etc/shadow').read()[:10], 'SHADOW')\nexcept OSError as e: print(type(e).__name__)",
     {}, lambda r: "ROOT" not in r.stdout and "SHADOW" not in r.stdout),
]


@pytest.mark.parametrize("name,source,limits,check", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_program_is_contained(pool, canaries, tmp_path, name, source, limits, check):
    marker = f"sandbox-marker-{uuid.uuid4().hex}"
    listener = socket.create_server(("127.0.0.1", 0))
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0{marker}")
    abstract.listen()
    subs = {**{k: str(v) for k, v in canaries.items()}, "@MARKER@": marker, "@REPO@": str(REPO),
            "@HOME@": str(Path.home()), "@PORT@": str(listener.getsockname()[1]), "@ABSTRACT@": marker}
    for k, v in subs.items():
        source = source.replace(k, v)
    venv_digest = hashlib.sha256(SYMPY_INIT.read_bytes()).hexdigest()
    result = pool.run(source, **{"timeout_s": 2.0, **limits})
    assert check(result), result
    listener.setblocking(False), abstract.setblocking(False)
    for s in (listener, abstract):
        with pytest.raises(BlockingIOError):  # nobody connected from inside
            s.accept()
        s.close()
    assert_contained(pool, canaries, marker, venv_digest)


def test_at_least_25_hostile_programs():
    assert len(HOSTILE) >= 25


def test_no_leak_between_executions():
    """Files in /tmp, /dev/shm and HOME, SysV shared memory and globals are gone for the next run."""
    with SandboxPool(max_workers=1) as pool:
        first = pool.run(
            "import os, ctypes\n"
            "for p in ['/tmp/leak', '/dev/shm/leak', os.path.expanduser('~/leak')]: open(p, 'w').write('x')\n"
            "libc = ctypes.CDLL(None)\nprint(libc.shmget(4242, 4096, 0o1666) >= 0)\nimport sympy; sympy.LEAK = 1")
        assert first.stdout == "True\n", first
        second = pool.run(
            "import os, ctypes, sympy\n"
            "print([os.path.exists(p) for p in ['/tmp/leak', '/dev/shm/leak', os.path.expanduser('~/leak')]])\n"
            "print(ctypes.CDLL(None).shmget(4242, 0, 0) >= 0, hasattr(sympy, 'LEAK'))")
        assert second.stdout == "[False, False, False]\nFalse False\n", second


def test_each_execution_draws_fresh_random_numbers():
    """Every execution is a fork of one warm interpreter: without a reseed in the child, `random`
    and numpy would hand every run the same "random" numbers."""
    pytest.importorskip("numpy")
    with SandboxPool(max_workers=1) as pool:
        runs = pool.map(["import random, numpy as np\nprint(random.random(), np.random.random())"] * 3)
    draws = [r.stdout.split() for r in runs]
    assert all(len(d) == 2 for d in draws), runs
    assert len({d[0] for d in draws}) == 3 and len({d[1] for d in draws}) == 3, draws


MATH = [
    ("print(2 ** 100)", "1267650600228229401496703205376\n"),
    ("from fractions import Fraction\nprint(sum(Fraction(1, k) for k in range(1, 11)))", "7381/2520\n"),
    ("import math\nprint(math.comb(50, 25), math.gcd(1071, 462), math.isqrt(10**20))", "126410606437752 21 10000000000\n"),
    ("import itertools\nprint(sum(1 for p in itertools.permutations(range(6)) if all(p[i] != i for i in range(6))))", "265\n"),
    ("import sympy as sp\nx = sp.symbols('x')\nprint(sp.solve(x**2 - 5*x + 6, x))", "[2, 3]\n"),
    ("import sympy as sp\nprint(sp.factorint(2**32 + 1), sp.Rational(3, 4) + sp.Rational(1, 6))", "{641: 1, 6700417: 1} 11/12\n"),
    ("import sympy as sp\nx = sp.symbols('x')\nprint(sp.integrate(x * sp.exp(x), (x, 0, 1)))", "1\n"),
    ("from decimal import Decimal, getcontext\ngetcontext().prec = 30\nprint(Decimal(1) / Decimal(7))", "0.142857142857142857142857142857\n"),
    ("import numpy as np\nprint(round(float(np.linalg.det(np.array([[2, 1], [1, 3]]))), 6))", "5.0\n"),
]


@pytest.mark.parametrize("source,expected", MATH)
def test_math_code_runs(pool, source, expected):
    if "numpy" in source:
        pytest.importorskip("numpy")
    result = pool.run(source)
    assert (result.stdout, result.error, result.exit_code) == (expected, None, 0), result


def test_errors_are_summarized(pool):
    r = pool.run("x = 1\ny = x / 0")
    assert r.error == "ZeroDivisionError: division by zero"
    assert 'File "<cell>", line 2' in r.stderr and "y = x / 0" in r.stderr
    assert pool.run("def f(:\n  pass").error.startswith("SyntaxError")
    assert pool.run("import os\nos.chdir('/')\nprint(os.getcwd())").stdout == "/\n"


def test_map_keeps_order(pool):
    results = pool.map([f"print({i} * {i})" for i in range(12)])
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(12)]


def test_setup_runs_earlier_cells_silently(pool):
    r = pool.run("print(a + b)", setup=["a = 1\nprint('noise')", "1 / 0", "b = 41"])
    assert (r.stdout, r.stderr, r.error) == ("42\n", "", None)


def test_code_session(pool):
    session = CodeSession(pool, max_calls=3)
    assert session.run("import sympy as sp\nx = sp.symbols('x')\nprint('first')").stdout == "first\n"
    assert session.run("roots = sp.solve(x**2 - 4, x)\nprint(roots)").stdout == "[-2, 2]\n"
    third = session.run("print(sum(roots))")
    assert third.stdout == "0\n" and "first" not in third.stdout
    over = session.run("print('never runs')")
    assert over.stdout == "" and over.error.startswith("CallLimitError")
    assert session.cells[-1] == "print(sum(roots))"


def test_backend_and_limits_validation(pool):
    assert pool.backend == sandbox_backend()
    if sandbox_backend() != "bwrap":
        pytest.skip("bubblewrap unavailable: fallback backend in use")
    with pytest.raises(ValueError):
        pool.submit("print(1)", timeout_s=0)
    assert isinstance(pool.run("pass"), ExecResult)


@pytest.mark.parametrize("backend", ["unshare", "plain"])
def test_fallback_backends_warn_and_run(backend):
    """The fallbacks, with the system Python (they need a world-readable one when we are root).
    Only "unshare" gets a network probe: "plain" has no network namespace."""
    system_python = "/usr/bin/python3"
    if not os.access(system_python, os.X_OK) or not shutil.which("unshare"):
        pytest.skip("no system python or no unshare")
    probe = ("import socket; s = socket.socket(); s.settimeout(2); "
             "print(s.connect_ex(('1.1.1.1', 53)) != 0)") if backend == "unshare" else "print(True)"
    code = (f"import sys, warnings; sys.path.insert(0, {str(REPO)!r}); warnings.simplefilter('always')\n"
            "from tasks.sandbox import SandboxPool\n"
            "with warnings.catch_warnings(record=True) as w, SandboxPool(1, warm_imports=()) as pool:\n"
            f"    ok = pool.run({probe!r}).stdout.strip()\n"
            "    loop = pool.run('while True: pass', timeout_s=1)\n"
            "    print(pool.backend, ok, loop.timed_out, any('Lost' in str(x.message) for x in w))\n")
    env = {**os.environ, "SELFIMPROVE_SANDBOX_BACKEND": backend}
    out = subprocess.run([system_python, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [backend, "True", "True", "True"], out.stdout + out.stderr


def test_leftover_detector_sees_strays():
    """Negative control for leftovers(): a stray with the marker, and (as root) a sandbox-uid
    process with a sandbox-uid parent, are both reported."""
    marker = f"sandbox-marker-{uuid.uuid4().hex}"
    # A python stray keeps the marker in its command line; `sh -c "sleep 60 # marker"` does not,
    # since the shell may exec sleep in its place (a race the CI once lost).
    stray = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep(60)  # {marker}"],
                             stderr=subprocess.PIPE)
    try:
        for _ in range(500):  # a loaded machine may not show the new process at once
            if leftovers(marker) or stray.poll() is not None:
                break
            time.sleep(0.01)
        assert leftovers(marker), f"stray not seen (exit code {stray.poll()})"
    finally:
        stray.kill()
        _, err = stray.communicate()
    assert b"Error" not in err, err.decode(errors="replace")
    if os.geteuid() == 0:
        uid = BOX_UID_BASE + 999_999
        boxed = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], user=uid, group=uid, extra_groups=[],
                                 start_new_session=True)
        try:
            for _ in range(500):  # until sh has forked sleep
                if leftovers("no-such-marker"):
                    break
                time.sleep(0.01)
            assert leftovers("no-such-marker")
        finally:
            os.killpg(boxed.pid, signal.SIGKILL), boxed.wait()
