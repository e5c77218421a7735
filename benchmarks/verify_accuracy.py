"""Accuracy per failure family: our verifier vs math-verify on (gold, response, verdict) cases.

    .venv/bin/python benchmarks/verify_accuracy.py [--timeout 10] [--out ...]

The cases are written for this benchmark, one table per failure family of issue 14 (extraction
from real model text, and equivalence), each with answers that should be accepted and answers that
should be rejected. Both checkers see the same cases: ours through `verify_batch` (extraction +
`is_equivalent`, under the per-item time limit), math-verify as `verify(parse(f"${gold}$"),
parse(response))`, the way the throughput benchmark calls it. Prints accuracy per family side by
side and writes benchmarks/results/verify_accuracy.json (with every case either checker got wrong).

Also, extraction from text nobody wrote for this benchmark: MATH-500's reference solutions with
their final \\boxed{} unwrapped, so the answer stays in the solution's own inline or display math.
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tasks/, not an installed copy
OUT = ROOT / "benchmarks" / "results" / "verify_accuracy.json"
MATH500 = ROOT.parent / "shared" / "data" / "benchmarks" / "math500" / "test.jsonl"

# (gold, response, should be accepted)
CASES = {
    # -- extraction --------------------------------------------------------------------------
    "inline_math": [  # no \boxed: the answer sits in inline math, not in its last number
        ("x \\ge 5", "Dividing both sides by 3 keeps the sign, so we need $x \\geq 5$.", True),
        ("x \\ge 5", "Dividing both sides by 3 keeps the sign, so we need $x \\geq 6$.", False),
        ("10", "Adding the two counts gives \\( (9+1) \\)", True),
        ("10", "Adding the two counts gives \\( (9+2) \\)", False),
        ("(7, 6)", "Solving the system, the intersection point is $(7, 6)$", True),
        ("(7, 6)", "Solving the system, the intersection point is $(6, 7)$", False),
        ("\\begin{pmatrix} 2 & 1 \\\\ 0 & 3 \\end{pmatrix}",
         "Multiplying out, the product is $\\begin{pmatrix} 2 & 1 \\\\ 0 & 3 \\end{pmatrix}$", True),
        ("\\begin{pmatrix} 2 & 1 \\\\ 0 & 3 \\end{pmatrix}",
         "Multiplying out, the product is $\\begin{pmatrix} 2 & 0 \\\\ 1 & 3 \\end{pmatrix}$", False),
        ("\\frac{3}{8}", "The probability that both are red is $\\frac{3}{8}$", True),
        ("\\frac{3}{8}", "The probability that both are red is $\\frac{3}{5}$", False),
        ("-2 < x < 4", "Combining the two cases gives $-2 < x < 4$.", True),
        ("-2 < x < 4", "Combining the two cases gives $-2 < x \\le 4$.", False),
    ],
    "multi_boxed": [  # a multi-part answer boxed piece by piece
        ("3, 5", "For part (a) we get $\\boxed{3}$ and for part (b) $\\boxed{5}$.", True),
        ("3, 5", "The roots are $\\boxed{3}$ and $\\boxed{5}$.", True),
        ("3, 5", "The roots are $\\boxed{3}$ and $\\boxed{7}$.", False),
        ("x = 2, y = -1", "Therefore $x = \\boxed{2}$, $y = \\boxed{-1}$.", True),
        ("x = 2, y = -1", "Therefore $x = \\boxed{2}$, $y = \\boxed{1}$.", False),
        ("\\frac{1}{2}, 4", "So the answers are \\boxed{\\frac{1}{2}}, \\boxed{4}", True),
        ("4", "So the answers are \\boxed{\\frac{1}{2}}, \\boxed{4}", False),
        ("6", "A first guess was \\boxed{5}; checking it fails, so the answer is \\boxed{6}.", True),
        ("-1, 1", "\\[\\boxed{-1} \\quad \\text{or} \\quad \\boxed{1}\\]", True),
        ("\\frac{9}{4}", "That is $\\boxed{2\\frac{1}{4}}$, or $\\boxed{\\frac{9}{4}}$ cups.", True),
        ("-2, 2", "So $x = \\boxed{2}$ or $x = \\boxed{-2}$.", True),
        ("2", "So $x = \\boxed{2}$ or $x = \\boxed{-2}$.", False),
    ],
    "precedence": [  # a later final-answer line beats an early intermediate box
        ("10455", "The first block gives $\\boxed{255}$ terms.\n\nAdding all blocks, the final "
         "answer is $10,455$.", True),
        ("255", "The first block gives $\\boxed{255}$ terms.\n\nAdding all blocks, the final "
         "answer is $10,455$.", False),
        ("34", "Checking n = 35 fails.\n\nFinal Answer: The largest $n$ is 34.", True),
        ("35", "Checking n = 35 fails.\n\nFinal Answer: The largest $n$ is 34.", False),
        ("12", "So the area is $\\boxed{12}$. This answer is consistent with the figure.", True),
        ("7", "We find $x = 3$ and then $y = 7$.\nAnswer: $7$", True),
        ("3", "We find $x = 3$ and then $y = 7$.\nAnswer: $7$", False),
        ("9", "Hence $\\boxed{9}$.\nNote that the answer is not 8, since 8 is even.", True),
        ("8", "Hence $\\boxed{9}$.\nNote that the answer is not 8, since 8 is even.", False),
    ],
    "digit_in_word": [  # a digit inside a word is not an answer
        ("2", "The code word is AZYUK2A", False),
        ("2", "The code word is AZYUK2A, so the count is 2", True),
        ("4", "Blood type AB4x was listed", False),
        ("4", "The number of blood types listed is 4", True),
        ("3", "We use the H2O2 decomposition", False),
        ("7", "Player B7 scores 7 points", True), ("12", "Flight QF12A departs", False),
    ],
    # -- equivalence -------------------------------------------------------------------------
    "decimal_comma": [  # decimal commas and the ,\! thousands separator followed by a space
        ("1000.99", "1000,99", True), ("1000.99", "1000,98", False), ("0.111", "0,111", True),
        ("0.111", "0,112", False), ("2.74", "2,74 $", True), ("2.74", "2,47 $", False),
        ("10455", "10,\\! 455", True), ("10455", "10,\\! 456", False),
        ("1234567", "1,\\! 234,\\! 567", True), ("1234", "1,234", True), ("1.234", "1,234", False),
    ],
    "labelled": [  # a label on the answer, or labels on its parts
        ("(3, 2)", "$(p,q)=(3,2)$", True), ("(3, 2)", "$(p,q)=(2,3)$", False),
        ("AB = 4, CD = 5", "$CD=5, AB=4$", True), ("AB = 4, CD = 5", "$AB=5, CD=4$", False),
        ("1", "$|AB|=1$", True), ("1", "$|AB|=2$", False),
        ("11:21", "$V_1:V_2=11:21$", True), ("11:21", "$V_1:V_2=21:11$", False),
        ("y = 2x + 3", "$f(x)=2x+3$", True), ("y = 2x + 3", "$f(x)=2x-3$", False),
        ("(5, 8), (8, 5)", "$(x, y) = (5, 8) \\quad \\text{and} \\quad (8, 5)$", True),
        ("(5, 8)", "$(x, y) = (5, 8) \\quad \\text{and} \\quad (8, 5)$", False),
    ],
    "relations": [  # inequalities as sets of reals
        ("x < 1", "$-x > -1$", True), ("x < 1", "$-x < -1$", False),
        ("x \\le 3", "$2x \\le 6$", True), ("x \\le 3", "$2x < 6$", False),
        ("[-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]", "$1\\leq|z|\\leq 3/2$", True),
        ("[-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]", "$1<|z|\\leq 3/2$", False),
        ("(-\\infty, -2) \\cup (2, \\infty)", "$x^2 > 4$", True),
        ("(-\\infty, -2) \\cup (2, \\infty)", "$x^2 \\ge 4$", False),
    ],
    "tuples_sets": [  # separators, "or" glued to a tuple, repeated elements
        ("(0, 0, 0)", "$(0;0;0)$", True), ("(0, 0, 0)", "$(0;0;1)$", False),
        ("(1, 2), (3, 4)", "$(1,2)$or$(3,4)$", True), ("(1, 2), (3, 4)", "$(1,2)$or$(4,3)$", False),
        ("(1, 2), (3, 4)", "$(1,2) \\text{ or }(3,4)$", True),
        ("\\{1, 2\\}", "$\\{1, 2, 2\\}$", True), ("\\{1, 2\\}", "$\\{1, 2, 3\\}$", False),
        ("2, 4", "$2, 4, 4$", True), ("2, 4, 4", "$2, 4$", False), ("2, 4, 4", "$4, 2, 4$", True),
    ],
    "approximation": [  # a decimal for an exact gold: >= 5 significant digits, within 1 last unit
        ("\\frac{1}{12}", "0.0833333333333333", True), ("\\frac{1}{12}", "0.083333", True),
        ("\\frac{1}{12}", "0.0833", False), ("\\frac{1}{12}", "0.0834", False),
        ("\\frac{\\sqrt{3}}{2}", "0.8660254037844", True), ("\\frac{\\sqrt{3}}{2}", "0.866", False),
        ("\\frac{\\sqrt{3}}{2}", "0.8660354037844", False), ("\\pi", "3.14159", True),
        ("\\pi", "3.14", False), ("\\frac{1}{3}", "0.33333", True), ("\\frac{1}{3}", "0.33334", False),
        ("\\frac{2}{3}", "0.66666", True), ("\\frac{2}{3}", "0.66667", True),
        ("\\frac{2}{3}", "0.66668", False),
    ],
    "sci_notation": [
        ("\\frac{1}{432}", "$2.3148\\times10^{-3}$", True),
        ("\\frac{1}{432}", "$2.3148\\times10^{-2}$", False),
        ("0.00015", "$1.5 \\times 10^{-4}$", True), ("0.00015", "$1.5 \\times 10^{4}$", False),
        ("3000000", "3 \\times 10^6", True), ("3000000", "3 \\times 10^5", False),
        ("\\frac{1}{7}", "$1.4286 \\times 10^{-1}$", True), ("\\frac{1}{7}", "$1.43 \\times 10^{-1}$", False),
    ],
    "mixed_numbers": [
        ("\\frac{3}{2}", "1 1/2", True), ("\\frac{3}{2}", "11/2", False),
        ("\\frac{11}{2}", "1 1/2", False), ("\\frac{23}{4}", "5 3/4", True),
        ("2.25", "2 1/4", True), ("2.25", "2 1/5", False),
        ("\\frac{23}{4}", "5 1/4", False), ("7.5", "7 \\frac{1}{2}", True), ("-\\frac{9}{4}", "-2 1/4", True),
    ],
    "clock_times": [
        ("20:34", "20:34:00", True), ("20:34", "20:43:00", False), ("20:34:00", "20:34", True),
        ("9:05", "09:05", True), ("9:05", "9:50", False), ("12:00", "1:00", False),
        ("8:30", "8:30 AM", True), ("8:30", "8:03", False),
    ],
    "trig_degrees": [  # a degree sign inside a function argument
        ("\\cos x", "$\\sin(90^{\\circ}-x)$", True), ("\\cos x", "$\\sin(90-x)$", False),
        ("\\frac{1}{2}", "$\\sin 30^\\circ$", True), ("\\frac{1}{2}", "$\\cos 30^\\circ$", False),
        ("\\frac{\\sqrt{3}}{2}", "$\\cos(30^{\\circ})$", True), ("\\tan x", "$\\tan(180^\\circ + x)$", True),
        ("\\tan x", "$\\tan(90^\\circ + x)$", False),
        ("\\frac{\\sqrt{2}}{2}", "$\\sin 45^{\\circ}$", True), ("\\frac{\\sqrt{2}}{2}", "$\\sin 45$", False),
    ],
    "trailing_backslash": [
        ("185", "185\\", True), ("185", "186\\", False), ("185", "\\boxed{185\\ }", True),
        ("\\frac{1}{2}", "$\\frac{1}{2}\\\\$", True), ("\\frac{1}{2}", "$\\frac{1}{3}\\\\$", False),
    ],
    "units_glued": [  # too lenient before: letters glued to a number are a product, not a unit
        ("10", "10cm", False), ("10", "10 cm", True), ("10", "10\\text{ cm}", True),
        ("10", "10\\text{cm}", True), ("2", "2x", False), ("9", "9页", True), ("10", "10 \\text{ cm}^2", True),
    ],
    "list_order": [  # too lenient before: an ordered gold accepted in another order
        ("x = 1, y = 2", "2, 1", False), ("x = 1, y = 2", "1, 2", True),
        ("x = 1, y = 2", "y = 2, x = 1", True), ("a = 3, b = 5", "5, 3", False),
        ("(1, 2, 3)", "(3, 2, 1)", False), ("(1, 2, 3)", "(1, 2, 3)", True),
        ("1:2:3", "3:2:1", False), ("-2, 1", "1, -2", True), ("\\{1, 2\\}", "\\{2, 1\\}", True),
    ],
}
EXTRACTION = ("inline_math", "multi_boxed", "precedence", "digit_in_word")


def run_ours(cases: list[tuple], timeout_s: float) -> list[bool]:
    from tasks.verify import verify_batch

    verdicts = verify_batch([c[1] for c in cases], [c[0] for c in cases], timeout_s=timeout_s)
    return [bool(v.correct) for v in verdicts]


def run_math_verify(cases: list[tuple]) -> list[bool]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return [bool(verify(parse(f"${gold}$"), parse(response))) for gold, response, _ in cases]


def unboxed_math500(timeout_s: float) -> dict:
    """Right verdicts on MATH-500 solutions whose last \\boxed{x} became x (every gold is right)."""
    cases = []
    for line in MATH500.read_text().splitlines():
        solution, gold = json.loads(line)["solution"], json.loads(line)["answer"]
        start = solution.rfind("\\boxed{")
        depth, end = 0, start + len("\\boxed")
        while start >= 0 and end < len(solution):
            depth += (solution[end] == "{") - (solution[end] == "}")
            if depth == 0:
                break
            end += 1
        if start >= 0 and depth == 0:
            inner = solution[start + len("\\boxed{") : end]
            cases.append((gold, solution[:start] + inner + solution[end + 1 :], True))
    ours, mv = run_ours(cases, timeout_s), run_math_verify(cases)
    return {"solutions": len(cases), "ours_right": sum(ours), "math_verify_right": sum(mv)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows, misses, totals = {}, [], {"ours": 0, "math_verify": 0, "cases": 0}
    start = time.perf_counter()
    print(f"{'family':20s} {'cases':>5s} {'accept':>6s} {'reject':>6s} {'ours':>7s} {'math-verify':>11s}")
    for family, cases in CASES.items():
        assert {c[2] for c in cases} == {True, False}, f"{family}: needs cases of both verdicts"
        ours, mv = run_ours(cases, args.timeout), run_math_verify(cases)
        right_ours = [o == c[2] for o, c in zip(ours, cases)]
        right_mv = [m == c[2] for m, c in zip(mv, cases)]
        rows[family] = {"kind": "extraction" if family in EXTRACTION else "equivalence",
                        "cases": len(cases), "accept": sum(c[2] for c in cases),
                        "reject": sum(not c[2] for c in cases),
                        "ours": round(sum(right_ours) / len(cases), 4),
                        "math_verify": round(sum(right_mv) / len(cases), 4)}
        misses += [{"family": family, "gold": c[0], "response": c[1], "expected": c[2], "ours": o,
                    "math_verify": m} for c, o, m, ro, rm in zip(cases, ours, mv, right_ours, right_mv)
                   if not (ro and rm)]
        totals["ours"] += sum(right_ours)
        totals["math_verify"] += sum(right_mv)
        totals["cases"] += len(cases)
        row = rows[family]
        print(f"{family:20s} {row['cases']:5d} {row['accept']:6d} {row['reject']:6d} "
              f"{row['ours']:7.1%} {row['math_verify']:11.1%}")
    pooled = {k: round(totals[k] / totals["cases"], 4) for k in ("ours", "math_verify")}
    print(f"{'pooled':20s} {totals['cases']:5d} {'':6s} {'':6s} {pooled['ours']:7.1%} "
          f"{pooled['math_verify']:11.1%}")
    unboxed = unboxed_math500(args.timeout) if MATH500.is_file() else None
    if unboxed:
        print(f"MATH-500 solutions, final box unwrapped: {unboxed['solutions']}, right: ours "
              f"{unboxed['ours_right']}, math-verify {unboxed['math_verify_right']}")
    result = {"families": rows, "pooled": pooled | {"cases": totals["cases"]},
              "math500_unboxed": unboxed,
              "seconds": round(time.perf_counter() - start, 1), "misses": misses}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
