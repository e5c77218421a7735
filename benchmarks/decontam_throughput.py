"""Decontamination throughput and peak memory at 100k / 200k / 400k training items, vs all-pairs.

    nice -n 19 .venv/bin/python benchmarks/decontam_throughput.py [--sizes 100000 200000 400000]
        [--workers 2] [--naive 500]

Training items are synthetic, made of real text: each is 2-4 sentences drawn from GSM8K train and
the MATH test problems outside MATH-500, each sentence a benchmark sentence with probability 2%;
1% of the items are planted contamination (a benchmark question with one number changed). The eval side is every set in ../shared/data/benchmarks.
Each size runs `decontaminate_files` in a fresh child process (JSONL in, files out, the index
built inside the call) that reports its wall time and peak RSS (its own ru_maxrss and the largest
worker's), so the sizes do not share memory. Then, on a slice of `--naive` items in this process,
the indexed matcher and an all-pairs baseline (each item against every eval item's n-gram set,
same rule) must give the same verdicts; the speed ratio is printed.
Writes benchmarks/results/decontam_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "results" / "decontam_throughput.json"
EVALS = [str(DATA / "benchmarks")]


# ---------------------------------------------------------------------------------------------
# Synthetic training items from real text

def sentence_pool() -> tuple[list[str], list[str], list[dict]]:
    """(training-side sentences, benchmark sentences, benchmark rows). The training side is GSM8K
    train and the MATH test problems that are not in MATH-500."""
    from tasks.sources import load_eval_sets, read_problems
    evals = [r for rows in load_eval_sets(EVALS).values() for r in rows]
    in_evals = {r["question"] for r in evals}
    train = read_problems(DATA / "decontam/gsm8k/train.jsonl")[0] + read_problems(DATA / "decontam/math/test.jsonl")[0]
    split = re.compile(r"(?<=[.?!。？])\s+")
    sentences = lambda rows: [s for r in rows for s in split.split(r["question"]) if len(s) > 20]
    return sentences(r for r in train if r["question"] not in in_evals), sentences(evals), evals


def mixed_question(rng: random.Random, pool: list[str], eval_pool: list[str]) -> str:
    """2-4 sentences; each one is a benchmark sentence with probability 2%."""
    return " ".join(rng.choice(eval_pool if rng.random() < 0.02 else pool) for _ in range(rng.randint(2, 4)))


def one_number_changed(text: str, rng: random.Random) -> str:
    numbers = list(re.finditer(r"\d+", text))
    if not numbers:  # a verbatim copy in other dress: spacing, $, punctuation
        return re.sub(r"\s+", "  ", text).replace("$", "").rstrip(".?") + " ?"
    m = rng.choice(numbers)
    return text[:m.start()] + str(int(m.group()) + rng.randint(1, 9)) + text[m.end():]


def write_items(path: Path, n: int, pools: tuple, seed: int = 0) -> int:
    pool, eval_pool, evals = pools
    rng, planted = random.Random(seed), 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if rng.random() < 0.01:
                question, planted = one_number_changed(rng.choice(evals)["question"], rng), planted + 1
                item_id = f"planted-{i}"
            else:
                question, item_id = mixed_question(rng, pool, eval_pool), f"s-{i}"
            f.write(json.dumps({"id": item_id, "question": question}, ensure_ascii=False) + "\n")
    return planted


# ---------------------------------------------------------------------------------------------
# One size, in a child process

def child(train: str, workers: int) -> None:
    import pyarrow.parquet as pq
    from tasks.config import DecontaminateConfig
    from tasks.decontaminate import decontaminate_files
    out = Path(train).with_suffix(".out")
    start = time.perf_counter()
    report = decontaminate_files([train], EVALS, out, DecontaminateConfig(workers=workers))
    wall = time.perf_counter() - start
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before reading the results
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ids = pq.read_table(out / "contaminated.parquet", columns=["item_id"]).column("item_id").to_pylist()
    print(json.dumps({
        "wall_s": round(wall, 2), "items": report["items"], "contaminated": report["contaminated"],
        "planted_flagged": len({i for i in ids if i.startswith("planted")}),
        "maxrss_main_mb": round(main_mb, 1), "maxrss_worker_mb": round(worker_mb, 1),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
    }))


def run_size(tmp: Path, n: int, workers: int, pools: tuple) -> dict:
    train = tmp / f"train-{n}.jsonl"
    planted = write_items(train, n, pools)
    proc = subprocess.run([sys.executable, __file__, "--child", str(train), "--workers", str(workers)],
                          capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(planted=planted, items_per_s=round(n / result["wall_s"]))
    return result


# ---------------------------------------------------------------------------------------------
# All-pairs baseline on a slice

def naive_verdicts(texts: list[str], index, cfg) -> set:
    """Every item against every eval item: first shared n-gram (or equal skeleton), same ratio."""
    from tasks.decontaminate import _aligned_ratio, _keys, _skeleton_ratio, normalize
    eval_keys = []
    for text in index.texts:
        keys = dict(_keys(text.split(), index.n))  # position -> hash; -1 is the skeleton
        eval_keys.append((set(h for p, h in keys.items() if p >= 0), keys.get(-1)))
    out = set()
    for i, text in enumerate(texts):
        tokens = normalize(text).split()
        keys = list(_keys(tokens, index.n))
        grams = [(p, h) for p, h in keys if p >= 0]
        skeleton = next((h for p, h in keys if p < 0), None)
        for k, (gram_set, eval_skeleton) in enumerate(eval_keys):
            pos = next((p for p, h in grams if h in gram_set), None)
            if pos is not None:
                ratio = _aligned_ratio(tokens, pos, " ".join(tokens[pos:pos + index.n]), index.texts[k])
            elif skeleton is not None and skeleton == eval_skeleton:
                ratio = _skeleton_ratio(tokens, index.texts[k])[1]
            else:
                continue
            if ratio is not None and ratio > cfg.lcs_ratio:
                out.add((i, k))
    return out


def compare_naive(n: int, pools: tuple) -> dict:
    from tasks.config import DecontaminateConfig
    from tasks.decontaminate import NgramIndex, match_text
    (pool, eval_pool, evals), cfg, rng = pools, DecontaminateConfig(workers=1), random.Random(1)
    index = NgramIndex.from_specs(EVALS, cfg.ngram)
    texts = [one_number_changed(rng.choice(evals)["question"], rng) if i % 10 == 0
             else mixed_question(rng, pool, eval_pool) for i in range(n)]
    start = time.perf_counter()
    fast = {(i, k) for i, t in enumerate(texts) for k, _, _ in match_text(t, index, cfg.lcs_ratio)}
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = naive_verdicts(texts, index, cfg)
    slow_s = time.perf_counter() - start
    return {"items": n, "eval_items": len(index), "flagged_pairs": len(fast), "same_verdicts": fast == slow,
            "indexed_items_per_s": round(n / fast_s), "naive_items_per_s": round(n / slow_s, 1),
            "speedup": round(slow_s / fast_s)}


def debug_missed(n: int) -> None:
    from tasks.config import DecontaminateConfig
    from tasks.decontaminate import NgramIndex, match_text
    pools, rng = sentence_pool(), random.Random(2)
    index, cfg = NgramIndex.from_specs(EVALS, 13), DecontaminateConfig()
    for _ in range(n):
        row = rng.choice(pools[2])
        planted = one_number_changed(row["question"], rng)
        if not match_text(planted, index, cfg.lcs_ratio):
            print(repr(row["question"][:300]), "->", repr(planted[:300]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000, 400_000])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--naive", type=int, default=500)
    ap.add_argument("--child")
    ap.add_argument("--debug-missed", type=int, default=0, help="show planted items that are not flagged")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.workers)
    if args.debug_missed:
        return debug_missed(args.debug_missed)

    pools = sentence_pool()
    result = {"cpus": os.cpu_count(), "python": platform.python_version(), "workers": args.workers,
              "loadavg_1min_before": round(os.getloadavg()[0], 2), "eval_items": len(pools[2]), "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="decontam-bench-") as tmp:
        for n in args.sizes:
            r = result["sizes"][n] = run_size(Path(tmp), n, args.workers, pools)
            print(f"{n:>8,} items: {r['wall_s']:7.1f} s  {r['items_per_s']:>7,} items/s  peak RSS main "
                  f"{r['maxrss_main_mb']} MB, worker {r['maxrss_worker_mb']} MB  contaminated {r['contaminated']:,}"
                  f"  planted flagged {r['planted_flagged']}/{r['planted']}", flush=True)
    sizes = sorted(result["sizes"])
    result["time_ratio_per_doubling"] = [round(result["sizes"][b]["wall_s"] / result["sizes"][a]["wall_s"], 2)
                                         for a, b in zip(sizes, sizes[1:])]
    print("time ratio per doubling of items:", result["time_ratio_per_doubling"], "(2.0 = linear)")
    if args.naive:
        r = result["naive"] = compare_naive(args.naive, pools)
        print(f"all-pairs baseline on {r['items']} items x {r['eval_items']} eval items: "
              f"{r['naive_items_per_s']} items/s vs indexed {r['indexed_items_per_s']:,} items/s (one core), "
              f"{r['speedup']}x; same verdicts: {r['same_verdicts']} ({r['flagged_pairs']} flagged pairs)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
