"""The tiny world: a seeded generator of bilingual arithmetic word problems and their solutions.

    from tasks.world import make_problems, solve_cot
    problems = make_problems(100, seed=1, ops=["add"], max_digits=3, zh_fraction=0.5)
    print(problems[0]["question"], solve_cot(problems[0]))

Solutions are digit-by-digit chains of thought, one step per column from right to left, ending in
`\\boxed{}`. A "sloppy tutor" writes the bootstrap corpus with one systematic mistake (it drops
carries and never borrows): a base model that imitates it is wrong on carry problems greedily, but
its samples contain correct carries often enough for the verifier to pick them out. See
../shared/notes/tiny-world.md for the measurements behind this regime.

Tool-integrated (TIR) solutions (`solve_tir`) let Python do the arithmetic, in Qwen2.5-Math's
format (see tasks/tir.py and docs/tir.md); a prompt ending in TIR_SUFFIX (the default
`prompt.tir_template`) asks for one:

    solve_tir({"op": "mul", "a": 347, "b": 6}), line by line:
        ```python
        print(347 * 6)
        ```
        ```output
        2082
        ```
        \\boxed{2082}

The sloppy TIR tutor slips while copying the question into code: it drops the second digit of
the longer operand (347 * 6 -> print(37 * 6)), or, with two one-digit operands, uses the wrong
operator. Its output block and answer are what that wrong code prints, so they agree.
"""
from __future__ import annotations

import random

NAMES_EN = ["Tom", "Anna", "Lee", "Maria", "Sam", "Nina", "Omar", "Lucy"]
NAMES_ZH = ["小明", "小红", "小刚", "小丽", "小华", "小军"]

TEMPLATES = {
    ("add", "en"): [
        "{name} has {a} apples and buys {b} more. How many apples does {name} have now?",
        "A shop sold {a} pens on Monday and {b} pens on Tuesday. How many pens did it sell in total?",
        "What is {a} plus {b}?",
    ],
    ("add", "zh"): [
        "{name}有{a}个苹果，又买了{b}个。{name}现在有多少个苹果？",
        "商店星期一卖了{a}支笔，星期二卖了{b}支笔。一共卖了多少支笔？",
        "{a}加{b}等于多少？",
    ],
    ("sub", "en"): [
        "{name} had {a} stickers and gave away {b}. How many stickers are left?",
        "A tank holds {a} liters. {b} liters are used. How many liters remain?",
        "What is {a} minus {b}?",
    ],
    ("sub", "zh"): [
        "{name}有{a}张贴纸，送出了{b}张。还剩多少张？",
        "水箱里有{a}升水，用掉了{b}升。还剩多少升？",
        "{a}减{b}等于多少？",
    ],
    ("mul", "en"): [
        "Each box holds {a} marbles. How many marbles are in {b} boxes?",
        "{name} reads {a} pages a day for {b} days. How many pages is that?",
        "What is {a} times {b}?",
    ],
    ("mul", "zh"): [
        "每个盒子装{a}颗弹珠。{b}个盒子一共装多少颗？",
        "{name}每天读{a}页书，读了{b}天。一共读了多少页？",
        "{a}乘{b}等于多少？",
    ],
}
SYMBOL = {"add": "+", "sub": "-", "mul": "*"}


def _operands(rng: random.Random, op: str, max_digits: int) -> tuple[int, int]:
    def number() -> int:
        digits = rng.randint(1, max_digits)
        return rng.randint(10 ** (digits - 1), 10**digits - 1)

    if op == "mul":
        return number(), rng.randint(2, 9)
    a, b = number(), number()
    return (max(a, b), min(a, b)) if op == "sub" else (a, b)


def exact(op: str, a: int, b: int) -> int:
    return {"add": a + b, "sub": a - b, "mul": a * b}[op]


def make_problem(rng: random.Random, op: str, lang: str, max_digits: int) -> dict:
    a, b = _operands(rng, op, max_digits)
    name = rng.choice(NAMES_ZH if lang == "zh" else NAMES_EN)
    question = rng.choice(TEMPLATES[(op, lang)]).format(name=name, a=a, b=b)
    return {"op": op, "a": a, "b": b, "lang": lang, "question": question,
            "gold": str(exact(op, a, b)), "carry": needs_carry(op, a, b)}


def make_problems(n: int, *, seed: int, ops: list[str], max_digits: int, zh_fraction: float,
                  exclude: set[tuple] | None = None, prefix: str = "w") -> list[dict]:
    """n problems, deterministic in seed; `exclude` holds (op, a, b) keys to keep out (the test set)."""
    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < n:
        lang = "zh" if rng.random() < zh_fraction else "en"
        p = make_problem(rng, rng.choice(ops), lang, max_digits)
        if exclude and (p["op"], p["a"], p["b"]) in exclude:
            continue
        p["id"] = f"{prefix}{seed}-{len(out):06d}"
        out.append(p)
    return out


def needs_carry(op: str, a: int, b: int) -> bool:
    return solve_cot({"op": op, "a": a, "b": b}) != solve_cot({"op": op, "a": a, "b": b}, sloppy=True)


def _digits(x: int, width: int) -> list[int]:
    return [(x // 10**i) % 10 for i in range(width)]  # least significant first


def _add_steps(a: int, b: int, sloppy: bool) -> tuple[list[str], int]:
    width = max(len(str(a)), len(str(b)))
    steps, carry, answer = [], 0, 0
    for i, (x, y) in enumerate(zip(_digits(a, width), _digits(b, width))):
        s = x + y + carry
        steps.append(f"{x} + {y} + {carry} = {s}" if carry else f"{x} + {y} = {s}")
        last = i == width - 1
        answer += (s if last else s % 10) * 10**i
        carry = 0 if sloppy else s // 10
    return steps, answer


def _sub_steps(a: int, b: int, sloppy: bool) -> tuple[list[str], int]:
    width = len(str(a))
    steps, borrow, answer = [], 0, 0
    for i, (x, y) in enumerate(zip(_digits(a, width), _digits(b, width))):
        if sloppy:  # subtracts the smaller digit from the larger, never borrows
            hi, lo = max(x, y), min(x, y)
            steps.append(f"{hi} - {lo} = {hi - lo}")
            answer += (hi - lo) * 10**i
            continue
        top = x - borrow
        borrow = 1 if top < y else 0
        left = f"1{x}" if borrow else f"{x}"
        minus_borrow = " - 1" if top != x else ""
        r = top + 10 * borrow - y
        steps.append(f"{left}{minus_borrow} - {y} = {r}")
        answer += r * 10**i
    return steps, answer


def _mul_steps(a: int, b: int, sloppy: bool) -> tuple[list[str], int]:
    width = len(str(a))
    steps, carry, answer = [], 0, 0
    for i, x in enumerate(_digits(a, width)):
        p = x * b + carry
        steps.append(f"{x} * {b} + {carry} = {p}" if carry else f"{x} * {b} = {p}")
        last = i == width - 1
        answer += (p if last else p % 10) * 10**i
        carry = 0 if sloppy else p // 10
    return steps, answer


STEPS = {"add": _add_steps, "sub": _sub_steps, "mul": _mul_steps}


def solve_cot(problem: dict, sloppy: bool = False) -> str:
    """A chain-of-thought solution; the sloppy tutor's steps and final answer agree with each other."""
    op, a, b = problem["op"], problem["a"], problem["b"]
    steps, answer = STEPS[op](a, b, sloppy)
    # Compact, without spaces: every digit is then the same token wherever it stands (a space
    # before a digit would make " 7" and "7" two tokens the tiny model must learn to equate).
    text = f"{a} {SYMBOL[op]} {b} : " + " ; ".join(steps) + f" ; \\boxed{{{answer}}}"
    return text.replace(" ", "")


# ---------------------------------------------------------------- tool-integrated solutions

TIR_SUFFIX = " Use Python."      # appended to a question: "answer in TIR mode"
WRONG_OP = {"add": "-", "sub": "+", "mul": "-"}  # never gives the right answer for operands >= 1


def tir_question(question: str) -> str:
    """The question as asked in TIR mode (the same suffix in English and Chinese)."""
    return question + TIR_SUFFIX


def tir_expression(problem: dict, sloppy: bool = False) -> tuple[int, str, int]:
    """(x, symbol, y) the TIR tutor types; the sloppy one miscopies an operand (see the module doc)."""
    op, a, b = problem["op"], str(problem["a"]), str(problem["b"])
    if sloppy and max(len(a), len(b)) == 1:
        return int(a), WRONG_OP[op], int(b)
    if sloppy:
        drop = lambda x: x[0] + x[2:]  # noqa: E731 - the second digit goes missing
        a, b = (drop(a), b) if len(a) >= len(b) else (a, drop(b))
    return int(a), SYMBOL[op], int(b)


def solve_tir(problem: dict, sloppy: bool = False) -> str:
    """A TIR solution: a code block, what it prints and the boxed answer, in the format tasks.tir's
    loop produces at sampling time (there, the sandbox writes the output block)."""
    x, symbol, y = tir_expression(problem, sloppy)
    result = {"+": x + y, "-": x - y, "*": x * y}[symbol]
    return f"```python\nprint({x} {symbol} {y})\n```\n```output\n{result}\n```\n\\boxed{{{result}}}"


def bootstrap_corpus(n: int, *, seed: int, ops: list[str], max_digits: int, zh_fraction: float,
                     sloppy_fraction: float, exclude: set[tuple] | None = None,
                     tir_fraction: float = 0.0, tir_sloppy_fraction: float | None = None) -> list[dict]:
    """Problems with solutions; carry problems are solved by the sloppy tutor with probability
    sloppy_fraction. With tir_fraction > 0, that share of rows gets mode "tir" (a TIR solution;
    sloppy rows get the sloppy TIR tutor; the prompt, not the question, asks for code) and every
    row a `mode`; tir_sloppy_fraction, when set, is the sloppy share of TIR rows on any problem
    (a copying slip does not depend on carries);
    with tir_fraction == 0 the rows are exactly those of a CoT-only corpus."""
    rng = random.Random(seed + 1)
    rows = make_problems(n, seed=seed, ops=ops, max_digits=max_digits, zh_fraction=zh_fraction,
                         exclude=exclude, prefix="b")
    for p in rows:
        p["sloppy"] = bool(p["carry"] and rng.random() < sloppy_fraction)
        p["solution"] = solve_cot(p, sloppy=p["sloppy"])
    if tir_fraction > 0:
        tir_rng = random.Random(seed + 2)  # its own streams: the CoT rows stay as they were
        slip_rng = random.Random(seed + 3)
        for p in rows:
            p["mode"] = "tir" if tir_rng.random() < tir_fraction else "cot"
            if p["mode"] == "tir":  # the question stays; the prompt (tir_template) asks for code
                if tir_sloppy_fraction is not None:  # copying slips are not tied to carries
                    p["sloppy"] = slip_rng.random() < tir_sloppy_fraction
                p["solution"] = solve_tir(p, sloppy=p["sloppy"])
    return rows


def held_out_problems(world_cfg, n_test: int, seed: int) -> list[dict]:
    """The tiny world's held-out test set (evaluate.n_test problems from evaluate.seed)."""
    return make_problems(n_test, seed=seed + 99991, ops=list(world_cfg.ops), max_digits=world_cfg.max_digits,
                         zh_fraction=world_cfg.zh_fraction, prefix="t")


def test_keys(world_cfg, n_test: int, seed: int) -> set[tuple]:
    """(op, a, b) of the held-out test set, kept out of every training source."""
    return {(p["op"], p["a"], p["b"]) for p in held_out_problems(world_cfg, n_test, seed)}


def corpus_modes(corpus) -> list[str]:
    """Each corpus row's reasoning mode (a CoT-only corpus frame has no `mode` column)."""
    return list(corpus["mode"]) if "mode" in corpus else ["cot"] * len(corpus)
