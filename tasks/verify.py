"""The `verify` stage's checker: is a model's answer mathematically equal to the gold answer?

    from tasks.verify import verify_batch, majority_vote
    verdicts = verify_batch(responses, golds, timeout_s=5.0, workers=None)

`extract_answer` (in `tasks/answer_extract.py`) finds the final answer of a response; `is_equivalent`
compares two answer strings; `verify_batch` does both for many items, each under a hard wall-clock
limit in a killable worker process (`tasks/verify_pool.py`), so it never hangs and is safe from
threads; `majority_vote` groups answers into equivalence classes for problems without a gold.

Comparison runs in three layers, cheapest first. (1) `fast_equal`: cleaned strings and plain
numbers as exact Fractions; it decides most GSM8K-style items in microseconds, in the caller's
process. (2) `parse_structure` (`tasks/answer_structure.py`): sets, lists, tuples, intervals,
unions, matrices, +-, equations, inequalities and text become small trees compared piece by
piece; inequalities that are not a plain interval are solved into sets of reals. (3) Leaves go
through math-verify's LaTeX parser to sympy (`tasks/answer_sympy.py`), then our own value test:
exact where possible, otherwise a relative tolerance of 1e-12 (never an absolute one, so 1/2004!
!= 1/2006!), and for expressions with variables, agreement at several positive sample points (so
sqrt(1/n) == 1/sqrt(n)).

Gold and prediction are not symmetric. The gold fixes (a) the precision: a gold decimal with at
least two places accepts an exact prediction that rounds to it (gold 3.14, prediction \\pi: correct);
an exact gold accepts a decimal of at least 5 significant digits that is it rounded or truncated
(gold \\pi: 3.14159 correct, 3.14 wrong); (b) the angle unit: a gold in degrees (30^\\circ)
accepts a prediction in radians (\\frac{\\pi}{6}); a gold in radians accepts degrees only when the
prediction says so (30^\\circ), never a bare 30; (c) the choices: a gold option letter (C, or
"C. 1-i") accepts the letter in any dress, or the option's text when the prediction has no letter;
(d) lists: a gold whose parts all carry labels (x = 1, y = 2) fixes the order of an unlabelled
prediction, and a gold without a repeated item is a set, so repeats in the prediction do not count.
Everything else is symmetric: a one-symbol label (x = 3) is dropped when the other side has none, a
percent sign on either side allows both readings (50% as 50 and as 0.5) while 0.5 != 50 without one.
"""

import re
from dataclasses import dataclass

from tasks.answer_extract import extract_answer
from tasks.answer_norm import clean, fast_equal, same_label
from tasks.answer_structure import parse_structure, text_key
from tasks.answer_sympy import (equations_equal, is_relation, leaf_equal, math_verify_parser,
                                real_set, sets_equal)
from tasks.verify_pool import run_jobs

__all__ = ["Verdict", "extract_answer", "is_equivalent", "majority_vote", "verify_batch"]

STATUSES = ("correct", "wrong", "no_answer", "timeout", "error", "unverified")
_COLLECTIONS = ("set", "union")


# ---------------------------------------------------------------------------------------------
# Equivalence of two answer strings


def is_equivalent(pred: str, gold: str) -> bool:
    """True when the prediction means the same answer as the gold (see the module docstring for
    the rules and the gold/prediction asymmetry). Runs in this process with no time limit: use
    `verify_batch` for untrusted text."""
    if pred is None or gold is None:
        return False
    fast = fast_equal(pred, gold)
    if fast is not None:
        return fast
    g = clean(gold)
    if (option := _option_text(g)) is not None:
        return is_equivalent(pred, option)
    return _same(parse_structure(clean(pred)), parse_structure(g))


def _option_text(gold: str) -> str | None:
    """ "1-i" for a gold "C. 1-i": reached only when the prediction carries no letter."""
    match = re.fullmatch(r"\(?[A-E]\)?[.．、]\s*(.+)", gold, re.S)
    return match[1] if match else None


def _same(p: tuple, g: tuple) -> bool:
    if is_relation(p) or is_relation(g):
        sets = real_set(p), real_set(g)
        if sets[0] is not None and sets[1] is not None:
            return sets_equal(*sets)
    if p[0] == "eq" or g[0] == "eq":
        return _same_eq(p, g)
    if p[0] in _COLLECTIONS and g[0] in _COLLECTIONS:
        return _same_items(p[-1], g[-1])
    if (parts := _labelled_tuple(p, g)) is not None:
        return parts  # x = 1, y = 2 and the tuple (1, 2), either way round
    if p[0] in _COLLECTIONS and len(p[-1]) == 1:
        return _same(p[-1][0], g)
    if p[0] in _COLLECTIONS and g[0] not in _COLLECTIONS and 1 < len(p[-1]) <= 12:
        distinct = _distinct(p[-1])  # one answer boxed twice: 15\frac{39}{40} or \frac{639}{40}
        return len(distinct) == 1 and _same(distinct[0], g)
    if g[0] in _COLLECTIONS and len(g[-1]) == 1:
        return _same(p, g[-1][0])
    if p[0] == "seq" and g[0] == "seq":
        # two items may be an interval, where the brackets are the answer; longer tuples or
        # vectors may be written with any matching pair of brackets, never a mixed one
        if len(p[3]) != len(g[3]) or (len(g[3]) == 2 and p[1:3] != g[1:3]):
            return False
        if len(g[3]) != 2 and not {p[1] + p[2], g[1] + g[2]} <= {"()", "[]"}:
            return False
        return all(_same(a, b) for a, b in zip(p[3], g[3]))
    if p[0] in ("seq", "matrix") and g[0] in ("seq", "matrix"):
        return _same_cells(p, g)
    if p[0] == "text" or g[0] == "text":
        return _text_of(p) == _text_of(g) != ""
    if p[0] == "leaf" and g[0] == "leaf":
        return leaf_equal(p[1], g[1])
    return False


def _same_eq(p: tuple, g: tuple) -> bool:
    if p[0] == "eq" and g[0] == "eq":
        if p[4] and g[4]:
            return same_label(p[1], g[1]) and _same(p[2], g[2])
        return equations_equal(p[1], p[3], g[1], g[3])
    if g[0] == "eq":
        return g[4] and _same(p, g[2])
    return _same(p[2], g)  # x = 3, or a chain that ends in its result: a + b = -1 + 5 = 4


def _same_items(preds: list, golds: list) -> bool:
    """Unordered match: every gold item pairs with a distinct equal prediction item. The gold's
    form decides two things: gold parts that all carry labels (x = 1, y = 2) fix the order of an
    unlabelled prediction; a gold without a repeated item is a set, so a prediction's repeats
    do not count, while a gold with one (2, 4, 4) counts them."""
    if golds and all(_labelled(g) for g in golds) and not any(_labelled(p) for p in preds):
        return len(preds) == len(golds) and all(_same(p, g) for p, g in zip(preds, golds))
    if len(golds) < len(preds) <= 12 and not _has_repeats(golds):
        preds = _distinct(preds)  # only more items than the gold can hold a repeat that matters
    if len(preds) != len(golds):
        return False
    unused = list(preds)
    for g in golds:
        hit = next((i for i, p in enumerate(unused) if _same(p, g)), None)
        if hit is None:
            return False
        unused.pop(hit)
    return True


def _labelled_tuple(p: tuple, g: tuple) -> bool | None:
    """Labelled parts against a tuple of as many items, in order; None when that is not the case."""
    if {p[0], g[0]} != {"set", "seq"}:
        return None
    parts, items = (p[1], g[3]) if p[0] == "set" else (g[1], p[3])
    if not (len(parts) == len(items) > 1 and all(map(_labelled, parts))):
        return None
    pairs = zip(parts, items) if p[0] == "set" else zip(items, parts)
    return all(_same(a, b) for a, b in pairs)


def _labelled(node: tuple) -> bool:
    return node[0] == "eq" and node[4]


def _has_repeats(items: list) -> bool:
    return len(items) > 12 or any(_same(a, b) for i, a in enumerate(items) for b in items[:i])


def _distinct(items: list) -> list:
    kept = []
    for item in items:
        if not any(_same(item, k) for k in kept):
            kept.append(item)
    return kept


def _same_cells(p: tuple, g: tuple) -> bool:
    """Matrices cell by cell; a one-row or one-column matrix also equals a tuple (a vector)."""
    rows_p, rows_g = _rows(p), _rows(g)
    if p[0] == g[0] == "matrix":
        if [len(r) for r in rows_p] != [len(r) for r in rows_g]:
            return False
        return all(_same(a, b) for rp, rg in zip(rows_p, rows_g) for a, b in zip(rp, rg))
    flat_p, flat_g = _vector(rows_p), _vector(rows_g)
    return flat_p is not None and flat_g is not None and len(flat_p) == len(flat_g) and all(
        _same(a, b) for a, b in zip(flat_p, flat_g))


def _rows(node: tuple) -> list[list]:
    return node[1] if node[0] == "matrix" else [node[3]]


def _vector(rows: list[list]) -> list | None:
    if len(rows) == 1:
        return rows[0]
    return [row[0] for row in rows] if all(len(row) == 1 for row in rows) else None


def _text_of(node: tuple) -> str:
    return node[1] if node[0] == "text" else text_key(node[1]) if node[0] == "leaf" else ""


# ---------------------------------------------------------------------------------------------
# Batches: extraction and the fast path here, everything else in killable workers


@dataclass
class Verdict:
    """One verified response.

    status: "correct" | "wrong" | "no_answer" | "timeout" | "error" | "unverified" (gold is None
    and an answer was found). correct is None when there is no gold; False for no_answer, timeout
    and error. mv_correct is plain math-verify's verdict (audit=True only, else None)."""

    answer: str | None
    correct: bool | None
    status: str
    mv_correct: bool | None = None


def verify_batch(responses: list[str], golds: list[str | None], *, timeout_s: float = 5.0,
                 workers: int | None = None, audit: bool = False,
                 truncated: list[bool] | None = None) -> list[Verdict]:
    """Extract and check every response against its gold, in order.

    Extraction and the fast path run here (linear-time string work, cannot hang); items they
    cannot decide go to `workers` worker processes (None: one per CPU) with a hard limit of
    `timeout_s` seconds each: a worker that overruns is killed and replaced and the item gets
    status "timeout". workers=0 starts no process: undecided items get status "error". Safe to call
    from any thread. audit=True also runs plain math-verify on each gold item (mv_correct).
    truncated[i] marks a response cut off at its token limit (see `extract_answer`)."""
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} golds: pass one gold per "
                         "response (None where there is none)")
    truncated = [False] * len(responses) if truncated is None else list(truncated)
    if len(truncated) != len(responses):
        raise ValueError(f"{len(responses)} responses but {len(truncated)} truncated flags")
    verdicts, jobs = [], []
    for i, (response, gold) in enumerate(zip(responses, golds)):
        gold = _gold_text(gold)
        verdict = _inline_verdict(response, gold, truncated[i])
        verdicts.append(verdict)
        if verdict.status == "pending":
            jobs.append({"kind": "eq", "pred": verdict.answer, "gold": gold, "item": i})
        if audit and gold is not None:
            jobs.append({"kind": "mv", "response": response, "gold": gold, "item": i})
    for job, (outcome, value) in zip(jobs, run_jobs(jobs, workers=workers, timeout_s=timeout_s)):
        verdict = verdicts[job["item"]]
        if job["kind"] == "mv":
            verdict.mv_correct = bool(value) if outcome == "ok" else None
        elif outcome == "ok":
            verdict.correct, verdict.status = bool(value), "correct" if value else "wrong"
        else:
            verdict.correct, verdict.status = False, outcome
    return verdicts


def _gold_text(gold) -> str | None:
    if gold is None or type(gold).__name__ == "NAType" or (isinstance(gold, float) and gold != gold):
        return None  # None, pandas NA or NaN: no gold
    if isinstance(gold, float) and gold.is_integer():
        return str(int(gold))
    return str(gold)


def _inline_verdict(response: str, gold: str | None, truncated: bool = False) -> Verdict:
    try:
        answer = extract_answer(response, truncated=truncated)
        if gold is None:
            return Verdict(answer, None, "unverified" if answer else "no_answer")
        if answer is None:
            return Verdict(None, False, "no_answer")
        fast = fast_equal(answer, gold)
    except Exception:  # untrusted text: a bug here must cost one item, not the batch
        return Verdict(None, None if gold is None else False, "error")
    if fast is None:
        return Verdict(answer, None, "pending")
    return Verdict(answer, fast, "correct" if fast else "wrong")


def handle_job(job: dict) -> bool:
    """Worker side of `verify_batch` / `majority_vote` (run by tasks.verify_pool)."""
    if job["kind"] == "eq":
        return is_equivalent(job["pred"], job["gold"])
    if job["kind"] == "mv":
        return math_verify_correct(job["response"], job["gold"])
    raise ValueError(f"unknown job kind {job['kind']!r}")


def math_verify_correct(response: str, gold: str) -> bool:
    """Plain math-verify, as commonly called: parse the gold and the whole response, verify."""
    from math_verify import parse, verify

    math_verify_parser()
    gold_text = gold if ("$" in gold or "\\boxed" in gold) else f"${gold}$"
    gold_parsed = parse(gold_text, parsing_timeout=None)
    return bool(verify(gold_parsed, parse(response, parsing_timeout=None), timeout_seconds=None))


# ---------------------------------------------------------------------------------------------
# Voting


def majority_vote(answers: list[str | None], weights: list[float] | None = None, *,
                  timeout_s: float = 5.0, workers: int | None = None) -> str | None:
    """The answer with the largest total weight over equivalence classes (None answers ignored;
    weights default to 1 and are summed as given). Ties go to the class whose first member comes
    earliest; the class is returned as that first member's string. Classes are merged with
    `fast_equal` here and with `is_equivalent` in workers (same time limit as verify_batch)."""
    weights = [1.0] * len(answers) if weights is None else list(weights)
    if len(weights) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(weights)} weights")
    reps, totals, by_key = [], [], {}
    for answer, weight in zip(answers, weights):
        if answer is None or answer != answer or not str(answer).strip():
            continue  # None, NaN (a pandas gap) or blank: no vote
        key = clean(str(answer)).replace(" ", "")
        if key not in by_key:
            by_key[key] = len(reps)
            reps.append(str(answer))
            totals.append(0.0)
        totals[by_key[key]] += float(weight)
    if not reps:
        return None
    parent = list(range(len(reps)))
    for i, j in _equal_pairs(reps, timeout_s, workers):
        root_i, root_j = _root(parent, i), _root(parent, j)
        parent[max(root_i, root_j)] = min(root_i, root_j)  # the earliest member is the root
    score = {}
    for i, total in enumerate(totals):
        score[_root(parent, i)] = score.get(_root(parent, i), 0.0) + total
    best = max(sorted(score), key=lambda root: score[root])  # max keeps the first (earliest) tie
    return reps[best]


def _root(parent: list[int], i: int) -> int:
    while parent[i] != i:
        i = parent[i]
    return i


def _equal_pairs(reps: list[str], timeout_s: float, workers: int | None) -> list[tuple[int, int]]:
    pairs, jobs = [], []
    for j in range(len(reps)):
        for i in range(j):
            fast = fast_equal(reps[j], reps[i])
            if fast:
                pairs.append((i, j))
            elif fast is None:
                jobs.append({"kind": "eq", "pred": reps[j], "gold": reps[i], "pair": (i, j)})
    for job, (outcome, value) in zip(jobs, run_jobs(jobs, workers=workers, timeout_s=timeout_s)):
        if outcome == "ok" and value:
            pairs.append(job["pair"])
    return pairs
