"""Scale-out costs on this machine, side by side in one run: sampling with the local backend vs 1
and 2 Ray shards (a local Ray cluster, its start-up timed apart), and SFT with 1 vs 2 processes
(accelerate launch + DeepSpeed ZeRO-2 over gloo). Writes benchmarks/results/scale_out.json.

    .venv/bin/python benchmarks/scale_out.py [--problems 512] [--n 4]

On 2 cores, 2 shards or 2 training processes share the same 2 cores as 1: the ratios say what the
plumbing costs (engine start per shard, process start, gloo), not what more GPUs would give.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--problems", type=int, default=512)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--sft-steps", type=int, default=40)
    args = parser.parse_args()

    import pandas as pd

    from flows import launch
    from flows.stages import stage_args, stage_key
    from tasks import world
    from tasks.bootstrap import build_tiny_model, train_tokenizer
    from tasks.config import load_config

    tmp = Path(tempfile.mkdtemp(prefix="scale-out-"))
    cfg = load_config(REPO / "configs" / "tiny.yaml", {"sample.n": args.n, "sample.tir_fraction": 0.0})
    problems = world.make_problems(args.problems, seed=1, ops=list(cfg.world.ops), max_digits=3, zh_fraction=0.5)
    pd.DataFrame(problems).to_parquet(tmp / "problems.parquet")
    corpus = world.bootstrap_corpus(2000, seed=0, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5, sloppy_fraction=0.6)
    train_tokenizer([r["question"] for r in corpus] + [r["solution"] for r in corpus], cfg.bootstrap.tiny.vocab_size, tmp / "tok")
    build_tiny_model(cfg.bootstrap.tiny, 0, tmp / "tok", tmp / "model")
    pd.DataFrame({"problem_id": [str(i) for i in range(len(corpus))], "prompt": [r["question"] + "\n" for r in corpus],
                  "completion": [r["solution"] for r in corpus]}).to_parquet(tmp / "kept.parquet")

    # Ray start-up, apart from the stages
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    started = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "ray"), "start", "--head", "--num-cpus", str(os.cpu_count()),
                    "--port", str(launch.free_port()), "--include-dashboard=false", "--disable-usage-stats",
                    f"--temp-dir={temp}"], check=True, capture_output=True)
    address = (temp / "ray_current_cluster").read_text().strip()
    import ray
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    ray_start_s = time.perf_counter() - started
    results = {"problems": args.problems, "n": args.n, "ray_start_s": round(ray_start_s, 1), "sample": {}, "sft": {}}
    try:
        def sample(name, **cluster):
            c = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update=cluster)})
            full = stage_args("sample", c, {"policy": tmp / "model", "problems": tmp / "problems.parquet"})
            t = time.perf_counter()
            r = launch.execute("sample", c, str(tmp / f"sample-{name}"), full, stage_key("sample", full) + name, {})
            results["sample"][name] = {"seconds": round(time.perf_counter() - t, 1), "samples": r.counts["samples"]}
            print(name, results["sample"][name], flush=True)

        sample("local")
        from tasks.engine import shutdown
        shutdown()
        sample("ray-1-shard", backend="ray", address=address, shards=1, cpus_per_shard=float(os.cpu_count()))
        sample("ray-2-shards", backend="ray", address=address, shards=2, cpus_per_shard=1.0)

        def sft(name, **train):
            c = cfg.model_copy(update={"sft": cfg.sft.model_copy(update={"train": cfg.sft.train.model_copy(
                update={"max_steps": args.sft_steps, "batch_size": 64, **train})})})
            full = stage_args("sft", c, {"max_length": 192, "policy": tmp / "model", "kept": [tmp / "kept.parquet"],
                                         "corpus": None})
            t = time.perf_counter()
            r = launch.execute("sft", c, str(tmp / f"sft-{name}"), full, stage_key("sft", full) + name, {})
            results["sft"][name] = {"seconds": round(time.perf_counter() - t, 1), "train_s": r.counts["train_s"],
                                    "steps": r.counts["train_steps"], "final_loss": r.counts["loss_curve"][-1]}
            print(name, results["sft"][name], flush=True)

        sft("1-process")
        sft("2-processes-zero2", num_processes=2, deepspeed="infra/zero2.json")
    finally:
        ray.shutdown()
        subprocess.run(["pkill", "-f", str(temp)], check=False)
    s, t = results["sample"], results["sft"]
    results["ratios"] = {
        "sample_ray1_over_local": round(s["ray-1-shard"]["seconds"] / s["local"]["seconds"], 2),
        "sample_ray2_over_local": round(s["ray-2-shards"]["seconds"] / s["local"]["seconds"], 2),
        "sample_ray2_over_ray1": round(s["ray-2-shards"]["seconds"] / s["ray-1-shard"]["seconds"], 2),
        "sft_2proc_over_1proc_wall": round(t["2-processes-zero2"]["seconds"] / t["1-process"]["seconds"], 2),
        "sft_2proc_over_1proc_train": round(t["2-processes-zero2"]["train_s"] / t["1-process"]["train_s"], 2),
    }
    out = REPO / "benchmarks" / "results" / "scale_out.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
