"""Where vLLM's engine runs on CPU: inside the calling process (our default there, tasks/engine.py)
vs vLLM's default of an engine-core process plus a worker process. Side by side in one run, each
way in a fresh Python process, alternating: engine start, then sampling the same prompts; the
outputs must be byte-identical. Prints the ratios; writes benchmarks/results/engine_process.json.

    .venv/bin/python benchmarks/engine_process.py [--model DIR] [--problems 500] [--n 6] [--repeats 2]

Without --model a tiny model is built (untrained weights generate to max_tokens: a fixed-length
workload). With a trained checkpoint (e.g. runs/tiny/round-01/06-sft/model) answers stop early,
as in a real round.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = {"in-process": "0", "engine processes": "1"}   # VLLM_ENABLE_V1_MULTIPROCESSING


def one_run(model_dir: str, problems: int, n: int, max_tokens: int) -> dict:
    """Runs in a child process: start the engine, sample, report times and a hash of the outputs."""
    import hashlib
    import time

    from tasks import engine, world
    from tasks.config import load_config

    cfg = load_config(REPO / "configs" / "tiny.yaml")
    rows = world.make_problems(problems, seed=7, ops=["add", "sub", "mul"], max_digits=2, zh_fraction=0.5)
    prompts = [r["question"] + "\n" for r in rows]
    started = time.perf_counter()
    engine.get_engine(model_dir, cfg.engine)
    start_s = time.perf_counter() - started
    started = time.perf_counter()
    out = engine.generate(model_dir, prompts, n=n, temperature=1.0, top_p=1.0, max_tokens=max_tokens, seed=0,
                          stop=None, engine_cfg=cfg.engine, keys=[str(i) for i in range(len(prompts))])
    sample_s = time.perf_counter() - started
    engine.shutdown()
    return {"start_s": round(start_s, 2), "sample_s": round(sample_s, 2),
            "tokens": sum(c["n_tokens"] for outs in out for c in outs),
            "outputs_sha256": hashlib.sha256(json.dumps(out).encode()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="checkpoint folder (default: a tiny untrained model)")
    parser.add_argument("--problems", type=int, default=500)
    parser.add_argument("--n", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(one_run(args.child, args.problems, args.n, args.max_tokens)), flush=True)
        return

    model_dir = args.model
    if not model_dir:
        from benchmarks.sample_throughput import build_model
        model_dir = build_model(Path(tempfile.mkdtemp(prefix="engine-process-")))
    runs = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode, flag in MODES.items():
            env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": flag, "HF_HUB_OFFLINE": "1",
                   "VLLM_LOGGING_LEVEL": "WARNING"}
            proc = subprocess.run([sys.executable, __file__, "--child", str(model_dir), "--problems", str(args.problems),
                                   "--n", str(args.n), "--max-tokens", str(args.max_tokens)],
                                  env=env, capture_output=True, text=True, cwd=REPO)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                raise SystemExit(f"{mode} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            runs[mode].append(json.loads(line[0][len("RESULT "):]))
            print(mode, runs[mode][-1], flush=True)

    best = {mode: {k: min(r[k] for r in rs) for k in ("start_s", "sample_s")} for mode, rs in runs.items()}
    hashes = {r["outputs_sha256"] for rs in runs.values() for r in rs}
    result = {
        "workload": {"model": args.model or "tiny (untrained)", "problems": args.problems, "n": args.n,
                     "max_tokens": args.max_tokens, "repeats": args.repeats, "cores": os.cpu_count()},
        "runs": runs,
        "best": best,
        "sample_speedup": round(best["engine processes"]["sample_s"] / best["in-process"]["sample_s"], 2),
        "start_speedup": round(best["engine processes"]["start_s"] / best["in-process"]["start_s"], 2),
        "identical_outputs": len(hashes) == 1,
    }
    print(f"sampling: in-process {best['in-process']['sample_s']} s vs engine processes "
          f"{best['engine processes']['sample_s']} s ({result['sample_speedup']}x); engine start "
          f"{best['in-process']['start_s']} s vs {best['engine processes']['start_s']} s "
          f"({result['start_speedup']}x); identical outputs: {result['identical_outputs']}")
    out = REPO / "benchmarks" / "results" / "engine_process.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", out.relative_to(REPO))
    if not result["identical_outputs"]:
        raise SystemExit("the two ways gave different outputs")


if __name__ == "__main__":
    main()
