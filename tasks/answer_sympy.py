"""Leaves of an answer's structure as sympy values, for the `verify` stage's workers.

`leaf_equal(pred, gold)` compares two leaf strings (after `fast_equal` could not decide) through
math-verify's LaTeX parser to sympy; `equations_equal` compares equations; `real_set` turns an
inequality, interval or union into a sympy set of reals (x < 1 and -x > -1 are the same set).
Everything here can take unbounded time on hostile input, so it runs only inside the killable
workers of `tasks/verify_pool.py` (or in `tasks.verify.is_equivalent`, which has no time limit).

    python -c "from tasks.answer_sympy import leaf_equal; print(leaf_equal('\\\\sqrt8', '2\\\\sqrt2'))"
"""

import logging
import random
import re
from fractions import Fraction
from functools import lru_cache

from tasks.answer_norm import (REL_TOL, approximates, clean, fast_equal, parse_number,
                               significant_digits, split_flags)

_RELATION = re.compile(r"\\le(?![A-Za-z])|\\ge(?![A-Za-z])|<|>|\\ne(?![A-Za-z])")
_TRIG = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![A-Za-z])")
_DEGREES = re.compile(r"(\d+(?:\.\d+)?)\s*\^\s*(?:\{\s*\\circ\s*\}|\\circ)")


def leaf_equal(pred: str, gold: str) -> bool:
    """One leaf against the gold's: plain numbers by `fast_equal`, else sympy values (see the
    rules in tasks/verify.py; a decimal for an exact gold by `answer_norm.approximates`)."""
    fast = fast_equal(pred, gold)
    if fast is not None:
        return fast
    p, g = _trig_degrees(clean(pred)), _trig_degrees(clean(gold))
    (p, p_pct, p_deg), (g, g_pct, g_deg) = split_flags(p), split_flags(g)
    p_val, g_val = to_sympy(p), to_sympy(g)
    if p_val is None or g_val is None:
        return False  # unparsable and not string-equal (fast_equal checked): no loose match
    if not (p_pct or p_deg or g_pct or g_deg) and (verdict := _decimal_for_exact(p, g_val)) is not None:
        return verdict
    number = parse_number(g)
    places = number[1] if number and number[1] and number[1] >= 2 else None
    for p_factor in _factors(p_pct, p_deg and not g_deg, g_deg and not p_deg):
        for g_factor in _factors(g_pct, False, False):
            if _values_equal(_scaled(p_val, p_factor), _scaled(g_val, g_factor), places):
                return True
    return False


def _factors(percent: bool, marked_degrees: bool, maybe_radians: bool) -> list:
    import sympy

    factors = [sympy.Integer(1)]
    if percent:
        factors.append(sympy.Rational(1, 100))
    if marked_degrees:  # the prediction says degrees, the gold is in radians
        factors += [f * sympy.pi / 180 for f in factors]
    if maybe_radians:  # the gold says degrees, the prediction may be in radians
        factors += [f * 180 / sympy.pi for f in factors]
    return factors


def _scaled(value, factor):
    return value if factor == 1 else value * factor


@lru_cache(maxsize=512)  # lists compare items pairwise: each leaf is parsed once
def to_sympy(s: str):
    """The sympy value of one leaf via math-verify's LaTeX parser, or None."""
    import sympy

    if not s or re.search(r"\^\s*\{[^{}]*\^|\^\s*\{?\s*-?\d{5,}|\d{5,}\s*!", s):
        return None  # a power tower or a huge factorial: compared as text, never evaluated
    if not _balanced(s):
        return None  # "(a+5)(b+2]": the parser would quietly fix what the model got wrong
    parse, config = math_verify_parser(units=not re.search(r"\d[A-Za-z]", s))
    found = parse(f"${s}$", extraction_config=[config], fallback_mode="no_fallback",
                  parsing_timeout=None)
    value = next((x for x in found if isinstance(x, (sympy.Basic, sympy.MatrixBase))), None)
    if isinstance(value, sympy.Basic):
        names = {"i": sympy.I, "e": sympy.E}
        subs = {sym: names[sym.name] for sym in value.free_symbols if sym.name in names}
        value = value.xreplace(subs) if subs else value
    return value


def _balanced(s: str) -> bool:
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    for char in s:
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def math_verify_parser(units: bool = True):
    """math-verify's parse and LaTeX config; units=False turns off its unit stripping, which also
    strips letters glued to a number (10cm would be 10; for us it is a product, like 2x)."""
    from dataclasses import replace

    from math_verify import LatexExtractionConfig, parse

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout is disabled": we own it
    config = LatexExtractionConfig()
    if units:
        return parse, config
    return parse, replace(config, normalization_config=replace(config.normalization_config,
                                                               units=False))


def _values_equal(p, g, places: int | None) -> bool:
    import sympy

    undefined = (sympy.zoo, sympy.nan)
    if any(isinstance(x, sympy.Basic) and x.has(*undefined) for x in (p, g)):
        return False  # 12:00 parses as 12/0: equal strings were already accepted by fast_equal
    if p == g:
        return True
    if not (isinstance(p, sympy.Expr) and isinstance(g, sympy.Expr)):
        from math_verify import verify  # sets, relations, matrices math-verify parsed itself
        return bool(verify(g, p, timeout_seconds=None))
    symbols = sorted(p.free_symbols | g.free_symbols, key=str)
    if not symbols:
        return _close(p, g, places if not p.has(sympy.Float) else None)
    for point in _sample_points(symbols):
        a, b = p.subs(point), g.subs(point)
        if not (a.is_number and b.is_number):
            return bool(sympy.simplify(p - g) == 0)
        if not _close(a, b, None):
            return False
    return True


def _sample_points(symbols: list) -> list[dict]:
    """Three points with every variable positive (answers' variables are lengths, counts, n...)."""
    import sympy

    rng = random.Random(len(symbols))
    return [{s: sympy.Rational(rng.randint(11, 97), rng.randint(7, 31)) for s in symbols}
            for _ in range(3)]


def _close(a, b, places: int | None) -> bool:
    import sympy

    va, vb = sympy.N(a, 30), sympy.N(b, 30)
    if not (va.is_number and vb.is_number):
        return False
    if va.has(sympy.oo, -sympy.oo, sympy.zoo, sympy.nan) or vb.has(sympy.oo, -sympy.oo, sympy.zoo,
                                                                    sympy.nan):
        return va == vb
    diff = abs(va - vb)
    try:
        if places is not None:  # the gold is a rounded decimal: the exact prediction must round to it
            return bool(diff <= sympy.Rational(1, 2) * sympy.Integer(10) ** -places + 1e-25)
        return bool(diff == 0 or diff <= REL_TOL * max(abs(va), abs(vb)))
    except TypeError:  # a comparison sympy cannot decide (an unevaluated Abs): not shown equal
        return False


def equations_equal(p_lhs: str, p_rhs: str, g_lhs: str, g_rhs: str) -> bool:
    """Equations are equal when lhs - rhs of one is a constant non-zero multiple of the other's;
    equations without variables (\\cos(\\pi) = -1) when their sides are equal."""
    import sympy

    sides = [to_sympy(clean(s)) for s in (p_lhs, p_rhs, g_lhs, g_rhs)]
    if not all(isinstance(s, sympy.Expr) for s in sides):
        return False
    fp, fg = sides[0] - sides[1], sides[2] - sides[3]
    symbols = sorted(fp.free_symbols | fg.free_symbols, key=str)
    if not symbols:
        return leaf_equal(p_lhs, g_lhs) and leaf_equal(p_rhs, g_rhs)
    ratios = []
    for point in _sample_points(symbols) + _sample_points(symbols + [sympy.Dummy()]):
        a, b = sympy.N(fp.subs(point), 30), sympy.N(fg.subs(point), 30)
        if not (a.is_number and b.is_number) or (a == 0) != (b == 0):
            return False
        if b != 0:
            ratios.append(a / b)
    return bool(ratios) and all(_close(r, ratios[0], None) for r in ratios)


def _trig_degrees(s: str) -> str:
    """\\sin(90^\\circ - x) -> \\sin((\\frac{90\\pi}{180}) - x): a degree sign inside a function's
    argument is a unit of that argument (math-verify drops it and reads 90 radians)."""
    if "circ" not in s or not _TRIG.search(s):
        return s
    return _DEGREES.sub(r"(\\frac{\1\\pi}{180})", s)


def _decimal_for_exact(pred: str, gold_value) -> bool | None:
    """The approximation rule when the prediction is a plain decimal and the gold an exact number
    (\\frac{\\sqrt3}{2}, \\pi): `approximates`; None when that is not the case."""
    import sympy

    number = parse_number(pred)
    if not number or number[1] is None or not isinstance(gold_value, sympy.Expr):
        return None
    if gold_value.free_symbols or gold_value.has(sympy.Float) or not gold_value.is_number:
        return None
    exact = sympy.N(gold_value, 60)
    if not exact.is_real:
        return None
    return approximates(number[0], Fraction(str(exact)), number[1], significant_digits(pred))


# ---------------------------------------------------------------------------------------------
# Relations: inequalities, intervals and unions as sets of reals


def is_relation(node: tuple) -> bool:
    """A leaf that is an inequality sympy must solve (-x > -1, 1 \\le |z| \\le 3/2)."""
    return node[0] == "leaf" and bool(_RELATION.search(node[1]))


def real_set(node: tuple):
    """The set of reals a node describes (an interval, a union of them, or an inequality in one
    variable), as a sympy Set; None when it is not one."""
    import sympy

    if node[0] in ("union", "set") and node[-1]:  # x \le -1 or x \ge 1 is a union too
        parts = [real_set(part) for part in node[-1]]
        return None if any(part is None for part in parts) else sympy.Union(*parts)
    if node[0] == "seq" and len(node[3]) == 2 and all(item[0] == "leaf" for item in node[3]):
        ends = [to_sympy(clean(item[1])) for item in node[3]]
        if not all(isinstance(end, sympy.Expr) and end.is_number for end in ends):
            return None
        return sympy.Interval(ends[0], ends[1], node[1] == "(", node[2] == ")")
    return _relation_set(node[1]) if is_relation(node) else None


@lru_cache(maxsize=256)
def _relation_set(relation: str):
    import sympy

    value = to_sympy(clean(relation))
    if isinstance(value, sympy.Basic) and len(value.free_symbols) == 1:
        return _solve(value, next(iter(value.free_symbols)))
    return None


def _solve(condition, symbol):
    import sympy

    if isinstance(condition, sympy.And):
        parts = [_solve(arg, symbol) for arg in condition.args]
        return None if any(p is None for p in parts) else sympy.Intersection(*parts)
    if isinstance(condition, sympy.Or):
        parts = [_solve(arg, symbol) for arg in condition.args]
        return None if any(p is None for p in parts) else sympy.Union(*parts)
    if not isinstance(condition, sympy.core.relational.Relational):
        return None
    real = sympy.Symbol(symbol.name, real=True)
    solved = sympy.solveset(condition.xreplace({symbol: real}), real, sympy.S.Reals)
    return solved if isinstance(solved, (sympy.Interval, sympy.Union, sympy.FiniteSet)) or \
        solved in (sympy.S.Reals, sympy.S.EmptySet) else None


def sets_equal(a, b) -> bool:
    import sympy

    return a == b or (sympy.Complement(a, b) == sympy.S.EmptySet
                      and sympy.Complement(b, a) == sympy.S.EmptySet)
