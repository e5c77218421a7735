"""Executions per second through SandboxPool vs a naive `subprocess.run([python, "-c", code])` per call.

    .venv/bin/python benchmarks/sandbox_throughput.py [--workers 2] [--seconds 10]

Both sides run with the same number of concurrent workers. For each snippet we time a fixed
number of executions (sized from --seconds and a quick first estimate), check that both sides print
the same thing, and report executions per second, their ratio and the per-execution latency of one
execution at a time (the start-up cost: interpreter + imports for naive; fork + IPC for the pool).
The naive side has no isolation at all and runs at nice 0, while sandboxes run at nice 10
(tasks.sandbox.NICE): on a busy machine the pool yields the CPU, so the load average is recorded too.
Writes benchmarks/results/sandbox_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tasks.sandbox import SandboxPool, sandbox_backend  # noqa: E402

SNIPPETS = {
    "trivial": "print(sum(range(100)))",
    "sympy": "import sympy as sp\nx = sp.symbols('x')\nprint(sp.factor(x**4 - 1), sp.factorint(2**32 + 1))",
}
RESULTS = Path(__file__).resolve().parent / "results" / "sandbox_throughput.json"


def naive(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout


def timed_many(fn, n: int, workers: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as ex:
        outs = list(ex.map(lambda _: fn(), range(n)))
    return n / (time.perf_counter() - start), outs


def latency_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seconds", type=float, default=10.0, help="rough time budget per measurement")
    args = ap.parse_args()

    start = time.perf_counter()
    pool = SandboxPool(max_workers=args.workers)
    pool.map(["pass"] * args.workers)  # every worker warm
    startup_s = time.perf_counter() - start
    report = {"backend": sandbox_backend(), "workers": args.workers, "cpus": os.cpu_count(),
              "python": platform.python_version(), "pool_startup_s": round(startup_s, 3),
              "loadavg_1min_before": round(os.getloadavg()[0], 2), "snippets": {}}
    print(f"backend {report['backend']}, {args.workers} workers, {os.cpu_count()} CPUs; "
          f"pool start-up (warm imports) {startup_s:.2f} s")
    try:
        for name, code in SNIPPETS.items():
            row = {}
            for side, fn in (("naive", lambda: naive(code)), ("pool", lambda: pool.run(code).stdout)):
                one = latency_ms(fn, 3)
                n = max(args.workers * 2, int(args.seconds * 1000 / one * args.workers))
                eps, outs = timed_many(fn, n, args.workers)
                row[side] = {"executions": n, "exec_per_s": round(eps, 2), "latency_ms": round(one, 2),
                             "output": outs[0].strip()}
                assert len(set(outs)) == 1, f"{side} {name}: outputs differ"
            assert row["naive"]["output"] == row["pool"]["output"], row
            row["ratio_pool_over_naive"] = round(row["pool"]["exec_per_s"] / row["naive"]["exec_per_s"], 2)
            report["snippets"][name] = row
            print(f"{name:8s} naive {row['naive']['exec_per_s']:8.1f}/s ({row['naive']['latency_ms']:7.1f} ms each) "
                  f"| pool {row['pool']['exec_per_s']:8.1f}/s ({row['pool']['latency_ms']:6.1f} ms each) "
                  f"| pool/naive {row['ratio_pool_over_naive']:.1f}x")
    finally:
        pool.close()
    report["loadavg_1min_after"] = round(os.getloadavg()[0], 2)
    print(f"load average (1 min) before {report['loadavg_1min_before']}, after {report['loadavg_1min_after']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
