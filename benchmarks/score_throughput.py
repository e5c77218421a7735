"""RM-scored samples per second of the `score` stage: batched (length-sorted, right-padded) vs one at a time.

    .venv/bin/python benchmarks/score_throughput.py [--rm DIR] [--samples 1000] [--batch-size 64] [--threads 1]
    .venv/bin/python benchmarks/score_throughput.py --rm RUN/round-02/08-reward/model \
        --predictions RUN/round-02/09-evaluate/predictions.parquet

Same RM, same samples, measured side by side in one run. With --predictions: a real evaluation's
sampled responses (n per problem, many of them the same text), scored the way `score_ids` does it
(each distinct text once) vs every row in length-sorted batches (what it did before); writes
benchmarks/results/score_repeats.json. Without --rm a tiny Qwen2 RM is built
(hidden 64, 1 layer, untrained head: the cost of a forward pass does not depend on the weights).
Samples are the tiny world's prompts with correct or sloppy CoT solutions. Prints the ratio;
writes benchmarks/results/score_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY = {"bootstrap": {"tiny": {"hidden_size": 64, "num_layers": 1, "num_heads": 1, "intermediate_size": 128,
                               "max_len": 128, "vocab_size": 300}}}


def build_rm(out: Path, texts: list[str]) -> str:
    """A tiny policy saved as an RM (scalar head, pad id set), as train_reward_model would save it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasks.bootstrap import build_tiny_model, train_tokenizer
    from tasks.config import Config
    cfg = Config.model_validate(TINY)
    train_tokenizer(texts, cfg.bootstrap.tiny.vocab_size, out / "tok")
    build_tiny_model(cfg.bootstrap.tiny, cfg.run.seed, out / "tok", out / "policy")
    model = AutoModelForSequenceClassification.from_pretrained(out / "policy", num_labels=1)
    tok = AutoTokenizer.from_pretrained(out / "policy")
    model.config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out / "rm")
    tok.save_pretrained(out / "rm")
    return str(out / "rm")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rm")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    ap.add_argument("--predictions", help="an evaluate stage's predictions.parquet (needs --rm)")
    args = ap.parse_args()
    if args.predictions:
        return repeats(args)

    import torch
    from tasks import world
    from tasks.rm import score_texts
    torch.set_num_threads(args.threads)

    rng = random.Random(0)
    problems = world.make_problems(args.samples, seed=21, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5)
    prompts = [p["question"] + "\n" for p in problems]
    responses = [world.solve_cot(p, sloppy=rng.random() < 0.5) for p in problems]
    tmp = tempfile.TemporaryDirectory()
    rm = args.rm or build_rm(Path(tmp.name), prompts + responses)

    score_texts(rm, prompts[:8], responses[:8], batch_size=8)  # warm-up (loading, first kernels)
    timings = {}
    for name, bs in (("batched", args.batch_size), ("one_at_a_time", 1)):
        t = time.perf_counter()
        scores = score_texts(rm, prompts, responses, batch_size=bs, max_length=128)
        s = time.perf_counter() - t
        timings[name] = {"batch_size": bs, "seconds": round(s, 2), "samples_per_s": round(len(scores) / s, 1)}
        timings[name]["_scores"] = scores

    diff = max(abs(a - b) for a, b in zip(timings["batched"].pop("_scores"), timings["one_at_a_time"].pop("_scores")))
    result = {
        "workload": {"samples": args.samples, "model": args.rm or "tiny Qwen2 (hidden 64, 1 layer)",
                     "torch_threads": args.threads, "includes": "tokenization + model load + forward passes"},
        **timings, "max_abs_score_diff": diff,
    }
    result["ratio"] = round(timings["batched"]["samples_per_s"] / timings["one_at_a_time"]["samples_per_s"], 2)
    print(json.dumps(result, indent=2))
    print(f"score stage, batched ({args.batch_size}) vs one at a time: {result['ratio']}x samples/s")
    (REPO / "benchmarks" / "results" / "score_throughput.json").write_text(json.dumps(result, indent=2))


def repeats(args) -> None:
    """Distinct texts once (score_ids) vs every row batched (score_batched), on a real evaluation's samples."""
    import pandas as pd
    import torch

    from tasks.rm import encode, load_rm, score_batched, score_ids
    torch.set_num_threads(args.threads)
    df = pd.read_parquet(args.predictions)
    df = df[df.kind == "sample"]
    model, tok = load_rm(args.rm)
    ids = encode(tok, list(df.prompt), list(df.response), 128)
    pad = model.config.pad_token_id
    score_ids(model, ids[:64], pad, args.batch_size)  # warm-up

    timings = {}
    for name, score in (("distinct_once", score_ids), ("every_row", score_batched)):
        t = time.perf_counter()
        timings[name] = {"scores": score(model, ids, pad, args.batch_size), "seconds": time.perf_counter() - t}
    a, b = timings["distinct_once"].pop("scores"), timings["every_row"].pop("scores")
    result = {"predictions": args.predictions, "rm": args.rm, "torch_threads": args.threads,
              "samples": len(ids), "distinct": len({tuple(x) for x in ids}),
              **{k: round(v["seconds"], 2) for k, v in timings.items()},
              "max_abs_score_diff": max(abs(x - y) for x, y in zip(a, b))}
    result["ratio"] = round(result["every_row"] / result["distinct_once"], 2)
    print(json.dumps(result, indent=2))
    print(f"scoring {result['samples']} samples ({result['distinct']} distinct): {result['ratio']}x faster once per text")
    (REPO / "benchmarks" / "results" / "score_repeats.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
