"""Self-check of the verifier on every benchmark's gold answers.

    .venv/bin/python benchmarks/verify_selfcheck.py [--data ../shared/data/benchmarks] [--limit N]

For each gold answer of `<data>/<benchmark>/test.jsonl`: the "self" check boxes the gold in a
response and verifies it against itself (extraction + equivalence, through `verify_batch`); the
"reformat" check does the same for every rewrite of the gold that applies (\\frac -> \\dfrac and
(a)/(b), decimal <-> fraction, thousands separators, $...$, \\text{...}, a "x = " label, no
\\left/\\right, a +- gold as a list, a list in reverse order). Writes
benchmarks/results/verify_selfcheck.json: per benchmark, the pass rates and a few failures.
"""

import argparse
import json
import re
import sys
import time
from decimal import Decimal, getcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tasks/, not an installed copy
DATA = ROOT.parent / "shared" / "data" / "benchmarks"
OUT = ROOT / "benchmarks" / "results" / "verify_selfcheck.json"


def load_golds(data: Path = DATA, limit: int | None = None) -> dict[str, list[str]]:
    """Gold answers per benchmark; with limit, an evenly spread sample of that many."""
    from tasks.answer_extract import benchmark_gold

    golds = {}
    for path in sorted(data.glob("*/test.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        answers = [g for g in (benchmark_gold(path.parent.name, row) for row in rows) if g]
        if limit and len(answers) > limit:
            answers = answers[:: len(answers) // limit][:limit]
        golds[path.parent.name] = answers
    return golds


def reformats(gold: str) -> list[tuple[str, str]]:
    """(kind, response) pairs: the gold rewritten the ways models write the same answer."""
    from tasks.answer_norm import choice_letter, clean, parse_number
    from tasks.answer_structure import _is_text, parse_structure, split_top

    boxed = "Therefore, the final answer is $\\boxed{{{}}}$.".format
    out = [("dollars", f"The answer is ${gold}$.")]
    if "\\frac" in gold:
        out.append(("dfrac", boxed(gold.replace("\\frac", "\\dfrac"))))
    if match := re.fullmatch(r"(-?)\\frac\{([^{}]+)\}\{([^{}]+)\}", gold.strip()):
        out.append(("slash", boxed(f"{match[1]}({match[2]})/({match[3]})")))
    if "\\left" in gold:
        out.append(("no_left_right", boxed(gold.replace("\\left", "").replace("\\right", ""))))
    if "\\pm" in gold and gold.count("\\pm") == 1 and "," not in gold:
        plus, minus = gold.replace("\\pm", "+"), gold.replace("\\pm", "-")
        out.append(("pm_list", boxed(f"{minus}, {plus}")))
    items = split_top(gold, re.compile(","))
    if len(items) > 1 and parse_structure(clean(gold))[0] == "set" and "\\pm" not in gold:
        out.append(("reversed_list", boxed(", ".join(reversed(items)))))
    cleaned = clean(gold)
    if number := parse_number(cleaned):
        value, places = number
        if places is not None and value.denominator != 1:
            out.append(("fraction", boxed(f"\\frac{{{value.numerator}}}{{{value.denominator}}}")))
        if places is None and value.denominator != 1 and _terminates(value.denominator):
            getcontext().prec = 50
            decimal = Decimal(value.numerator) / Decimal(value.denominator)
            out.append(("decimal", boxed(format(decimal.normalize(), "f"))))
        if value.denominator == 1 and abs(value) >= 1000:
            out.append(("thousands", boxed(f"{int(value):,}")))
    is_choice = choice_letter(cleaned) is not None and len(cleaned) <= 3
    if _is_text(cleaned) and not is_choice:
        out.append(("text", boxed(f"\\text{{{gold}}}")))
    elif not is_choice and "=" not in gold and "\\in" not in gold:
        out.append(("label", boxed(f"x = {gold}")))
    return out


def _terminates(denominator: int) -> bool:
    for p in (2, 5):
        while denominator % p == 0:
            denominator //= p
    return denominator == 1


def selfcheck(golds: dict[str, list[str]], timeout_s: float = 5.0,
              workers: int | None = None) -> dict:
    """Pass rates per benchmark of the self and reformat checks (one verify_batch for all)."""
    from tasks.verify import verify_batch

    items = []  # (benchmark, gold index, kind, response, gold)
    for name, answers in golds.items():
        for i, gold in enumerate(answers):
            items.append((name, i, "self", f"So the final answer is $\\boxed{{{gold}}}$.", gold))
            items += [(name, i, kind, response, gold) for kind, response in reformats(gold)]
    start = time.perf_counter()
    verdicts = verify_batch([it[3] for it in items], [it[4] for it in items],
                            timeout_s=timeout_s, workers=workers)
    seconds = time.perf_counter() - start
    report = {}
    for name, answers in golds.items():
        rows = [(it, v) for it, v in zip(items, verdicts) if it[0] == name]
        self_ok = [v.correct for it, v in rows if it[2] == "self"]
        failed = {it[1] for it, v in rows if it[2] != "self" and not v.correct}
        report[name] = {
            "golds": len(answers),
            "self_pass_rate": round(sum(self_ok) / max(len(self_ok), 1), 4),
            "reformat_checks": sum(1 for it, _ in rows if it[2] != "self"),
            "reformat_pass_rate": round(1 - len(failed) / max(len(answers), 1), 4),
            "failures": [{"gold": it[4], "kind": it[2], "answer": v.answer, "status": v.status}
                         for it, v in rows if not v.correct][:10],
        }
    return {"seconds": round(seconds, 1), "checks": len(items), "benchmarks": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="golds per benchmark (sample)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.data.is_dir():
        sys.exit(f"no benchmark data at {args.data}: pass --data DIR")
    result = selfcheck(load_golds(args.data, args.limit))
    for name, row in result["benchmarks"].items():
        print(f"{name:18s} golds {row['golds']:5d}  self {row['self_pass_rate']:.4f}  "
              f"reformat {row['reformat_pass_rate']:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"{result['checks']} checks in {result['seconds']} s -> {args.out}")


if __name__ == "__main__":
    main()
