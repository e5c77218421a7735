"""Verifications per second and agreement: our verifier vs calling math-verify directly.

    .venv/bin/python benchmarks/verify_throughput.py [--gsm8k 10000] [--math 2000] [--workers N]

Builds (response, gold) pairs from the GSM8K and MATH-500 test sets: each response is the set's
own reference solution ending in a \\boxed{} answer that is either the gold rewritten the way
models write it (18.00, \\$18, 1,080, \\dfrac, a decimal for a fraction...) or a realistic wrong
answer (off by a little, x10, a changed digit, another problem's answer). Both checkers see the
same pairs in one run: ours through `verify_batch` (extraction included, pool warmed first), and
math-verify as `verify(parse(f"${gold}$"), parse(response))` on the main thread. Prints the
throughput ratio and agreement rate; writes benchmarks/results/verify_throughput.json.
Also: `--selfcheck` runs benchmarks/verify_selfcheck.py's gold self-checks afterwards.
"""

import argparse
import json
import logging
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tasks/, not an installed copy
DATA = ROOT.parent / "shared" / "data" / "benchmarks"
OUT = ROOT / "benchmarks" / "results" / "verify_throughput.json"
ENDINGS = ["The answer is $\\boxed{{{}}}$.", "Therefore, the final answer is $\\boxed{{{}}}$.",
           "So the answer is \\boxed{{{}}}.", "\\[\n\\boxed{{{}}}\n\\]"]


def _rows(name: str) -> list[dict]:
    text = (DATA / name / "test.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def gsm8k_pairs(n: int, rng: random.Random) -> list[tuple[str, str, bool]]:
    """(response, gold, intended verdict): 60% right answers in model dress, 40% wrong."""
    pairs, rows = [], _rows("gsm8k")
    for k in range(n):
        row = rows[k % len(rows)]
        rationale, gold = row["answer"].split("####")
        gold = gold.strip().replace(",", "")
        rationale = re.sub(r"<<[^>]*>>", "", rationale).strip()
        value = int(float(gold))
        if rng.random() < 0.6:
            forms = [gold, f"{gold}.00", f"\\${gold}", f"{gold} \\text{{ dollars}}"]
            forms += [f"{value:,}"] if abs(value) >= 1000 else []
            pred, expected = rng.choice(forms), True
        else:
            wrong = [value + rng.choice([-1, 1]) * rng.randint(1, 20), value * 10, value + 100]
            pred, expected = str(rng.choice([w for w in wrong if w != value])), False
        pairs.append((f"{rationale}\n{rng.choice(ENDINGS).format(pred)}", gold, expected))
    return pairs


def math_pairs(n: int, rng: random.Random) -> list[tuple[str, str, bool]]:
    """MATH-500 reference solutions with the last \\boxed{} swapped for a right or wrong answer.
    Right answers are the gold as written, with \\dfrac, or as a decimal; wrong ones see _wrong."""
    from tasks.answer_norm import clean, parse_number

    pairs, rows = [], _rows("math500")
    for k in range(n):
        row = rows[k % len(rows)]
        gold = row["answer"]
        if rng.random() < 0.6:
            forms = [gold, gold.replace("\\frac", "\\dfrac"), f"{gold}"]
            number = parse_number(clean(gold))
            if number and number[0].denominator in (2, 4, 5, 8, 10, 20, 25):
                forms.append(str(float(number[0])))
            pred, expected = rng.choice(forms), True
        else:
            pred, expected = _wrong(gold, rows, rng), False
        pairs.append((_swap_box(row["solution"], pred), gold, expected))
    return pairs


def _wrong(gold: str, rows: list[dict], rng: random.Random) -> str:
    """A changed digit, a flipped sign, an interval with a flipped bracket, or another answer."""
    digits = [m.start() for m in re.finditer(r"\d", gold)]
    roll = rng.random()
    if roll < 0.2 and re.match(r"\\left[(\[]|[(\[]", gold) and re.search(r"[)\]]$", gold):
        flip = {"(": "[", "[": "(", ")": "]", "]": ")"}
        return gold[:-1] + flip[gold[-1]]
    if roll < 0.35 and "text" not in gold and re.fullmatch(r"-?[\d\\{}a-z.^ +]+", gold) and gold not in ("0", "-0"):
        return gold[1:] if gold.startswith("-") else f"-{gold}"
    if digits and roll < 0.8:
        i = rng.choice(digits)
        return gold[:i] + str((int(gold[i]) + rng.randint(1, 8)) % 10) + gold[i + 1 :]
    other = rng.choice(rows)["answer"]
    return other if other != gold else f"{gold}+1"


def _swap_box(solution: str, answer: str) -> str:
    start = solution.rfind("\\boxed{")
    if start < 0:
        return f"{solution}\nThe answer is $\\boxed{{{answer}}}$."
    depth, i = 0, start + len("\\boxed")
    while i < len(solution):
        depth += (solution[i] == "{") - (solution[i] == "}")
        if depth == 0:
            break
        i += 1
    return f"{solution[:start]}\\boxed{{{answer}}}{solution[i + 1:]}"


def run_ours(pairs, workers: int | None, timeout_s: float) -> tuple[list[bool], float]:
    from tasks.verify import verify_batch

    start = time.perf_counter()
    verdicts = verify_batch([p[0] for p in pairs], [p[1] for p in pairs], timeout_s=timeout_s,
                            workers=workers)
    return [bool(v.correct) for v in verdicts], time.perf_counter() - start


def run_math_verify(pairs) -> tuple[list[bool], float]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    start = time.perf_counter()
    results = [bool(verify(parse(f"${gold}$"), parse(response))) for response, gold, _ in pairs]
    return results, time.perf_counter() - start


def compare(name: str, pairs, workers: int | None, timeout_s: float) -> dict:
    ours, ours_s = run_ours(pairs, workers, timeout_s)
    mv, mv_s = run_math_verify(pairs)
    expected = [p[2] for p in pairs]
    disagree = [i for i, (a, b) in enumerate(zip(ours, mv)) if a != b]
    return {
        "pairs": len(pairs),
        "ours_per_s": round(len(pairs) / ours_s, 1),
        "math_verify_per_s": round(len(pairs) / mv_s, 1),
        "ratio": round(mv_s / ours_s, 2),
        "agreement": round(1 - len(disagree) / len(pairs), 4),
        "ours_accuracy_vs_intended": round(sum(a == e for a, e in zip(ours, expected)) / len(pairs), 4),
        "math_verify_accuracy_vs_intended": round(sum(b == e for b, e in zip(mv, expected)) / len(pairs), 4),
        "disagreements": [{"answer_tail": pairs[i][0][-120:], "gold": pairs[i][1], "ours": ours[i],
                           "math_verify": mv[i], "intended": expected[i]} for i in disagree[:25]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gsm8k", type=int, default=10_000)
    parser.add_argument("--math", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=None, help="verify_batch workers (None: CPUs)")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--selfcheck", action="store_true", help="also write verify_selfcheck.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    from tasks.verify import verify_batch

    start = time.perf_counter()  # warm the worker pool: a cold start is paid once per process
    verify_batch(["\\boxed{\\sqrt{2}/2}"] * 4, ["\\frac{1}{\\sqrt{2}}"] * 4, workers=args.workers)
    result = {"cpus": os.cpu_count(), "workers": args.workers or os.cpu_count(),
              "pool_warmup_s": round(time.perf_counter() - start, 2)}
    for name, pairs in (("gsm8k", gsm8k_pairs(args.gsm8k, rng)), ("math", math_pairs(args.math, rng))):
        result[name] = compare(name, pairs, args.workers, args.timeout)
        row = result[name]
        print(f"{name:6s} {row['pairs']:6d} pairs  ours {row['ours_per_s']:9.1f}/s  math-verify "
              f"{row['math_verify_per_s']:7.1f}/s  ratio {row['ratio']:6.2f}x  agreement "
              f"{row['agreement']:.4f}  accuracy ours {row['ours_accuracy_vs_intended']:.4f} "
              f"math-verify {row['math_verify_accuracy_vs_intended']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"-> {args.out}")
    if args.selfcheck:
        import runpy
        import sys

        sys.argv = ["verify_selfcheck.py"]
        runpy.run_path(str(ROOT / "benchmarks" / "verify_selfcheck.py"), run_name="__main__")


if __name__ == "__main__":
    main()
