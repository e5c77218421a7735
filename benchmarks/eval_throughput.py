"""Orchestration overhead of the `evaluate` stage: problems/s through run_evaluate vs calling vLLM
and the verifier directly on the same model and problems, in one run.

    .venv/bin/python benchmarks/eval_throughput.py --model runs/tiny/round-03/06-sft/model [--problems 1000]

Both paths do the same work: greedy + n samples per problem (CoT) with the same engine (started
once, before timing), then verification with the plain math-verify audit. Each path runs
`--repeats` times, alternating, and the best time of each counts. Prints the overhead ratio;
writes benchmarks/results/eval_throughput.json. Without --model a tiny untrained model is built.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--problems", type=int, default=1000)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="runs of each path, alternating; the best counts")
    args = ap.parse_args()

    import pandas as pd
    from sample_throughput import build_model
    from tasks.world import held_out_problems
    from tasks.config import load_config
    from tasks.engine import generate, get_engine
    from tasks.evaluate import run as run_evaluate
    from tasks.verify import verify_batch

    # CoT only: the direct path below has no TIR loop to compare with
    cfg = load_config(REPO / "configs" / "tiny.yaml", {"evaluate.n_test": args.problems, "evaluate.n": args.n,
                                                       "evaluate.modes": ["cot"]})
    tmp = tempfile.TemporaryDirectory()
    model = args.model or build_model(Path(tmp.name))
    test = pd.DataFrame(held_out_problems(cfg.world, cfg.evaluate.n_test, cfg.evaluate.seed)).assign(source="world")
    get_engine(model, cfg.engine)  # start-up excluded from both
    verify_batch(["\\boxed{1}"], ["1"], workers=cfg.verify.workers)  # warm the verifier pool

    e = cfg.evaluate
    prompts = [q + "\n" for q in test.question]
    common = dict(top_p=1.0, max_tokens=e.max_tokens, seed=e.seed, stop=None, engine_cfg=cfg.engine,
                  keys=[str(i) for i in test.id])

    def direct() -> None:
        greedy = generate(model, prompts, n=1, temperature=0.0, **common)
        sampled = generate(model, prompts, n=e.n, temperature=e.temperature, **common)
        outs = [o[0] for o in greedy] + [c for o in sampled for c in o]
        golds = list(test.gold) + [g for g in test.gold for _ in range(e.n)]
        # the same verifier call as the stage: with the plain math-verify audit (verify.audit)
        verify_batch([c["response"] for c in outs], golds, workers=cfg.verify.workers, audit=cfg.verify.audit,
                     truncated=[c["finish_reason"] == "length" for c in outs])

    def stage(k: int) -> None:
        out = Path(tmp.name) / f"eval-{k}"
        out.mkdir()
        run_evaluate(evaluate=cfg.evaluate, world=cfg.world, engine=cfg.engine, prompt=cfg.prompt, tir=cfg.tir,
                     verify=cfg.verify, score=cfg.score, stop=cfg.sample.stop, max_length=cfg.max_length(),
                     policy=Path(model), rm=None, previous=None, title="benchmark", out_dir=out)

    # alternate the two, best of `repeats` each: the machine's load drifts during a run
    times = {"direct": [], "evaluate": []}
    for k in range(args.repeats):
        for name, fn in (("direct", direct), ("evaluate", lambda: stage(k))):
            t = time.perf_counter()
            fn()
            times[name].append(round(time.perf_counter() - t, 2))
    direct_s, stage_s = min(times["direct"]), min(times["evaluate"])
    result = {"problems": len(test), "n": e.n, "model": model if args.model else "tiny (untrained)",
              "runs": times, "direct_s": direct_s, "evaluate_s": stage_s,
              "direct_problems_per_s": round(len(test) / direct_s, 1),
              "evaluate_problems_per_s": round(len(test) / stage_s, 1),
              "overhead": round(stage_s / direct_s - 1, 4)}
    print(json.dumps(result, indent=2))
    print(f"evaluate stage overhead vs direct vLLM + verifier: {100 * result['overhead']:.1f}%")
    (REPO / "benchmarks" / "results" / "eval_throughput.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "benchmarks"))
    main()
