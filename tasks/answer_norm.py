"""Cheap string-level normalisation of answers for the `verify` stage.

`clean`, `split_flags`, `parse_number` and `parse_structure` turn an answer string into the
canonical pieces that `tasks.verify` compares, and `fast_equal` decides what plain strings and
numbers can decide. Everything here is string work with bounded regexes and no sympy, on answers
capped at `MAX_ANSWER` characters, so it is safe to run in the caller's process on untrusted text.
The symbolic part (and its hard time limit) lives in `tasks/verify.py`.

    python -c "from tasks.answer_norm import fast_equal; print(fast_equal('\\\\dfrac12', '0.5'))"
"""

import re
from fractions import Fraction

MAX_ANSWER = 2000  # a longer "answer" is not an answer; the cap bounds all later work
MAX_DEPTH = 12  # nesting depth parse_structure follows; deeper input is compared as one leaf

# ---------------------------------------------------------------------------------------------
# Normalisation: one canonical surface form per answer string

_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20, 0xA0: 0x20}
_SUBS = [
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\displaystyle", ""), ("\\left", ""),
    ("\\right", ""), ("\\bigl", ""), ("\\bigr", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""),
    ("\\:", ""), ("\\qquad", " "), ("\\quad", " "), ("~", " "), ("{,}", ","),
    ("\\leqslant", "\\le"), ("\\geqslant", "\\ge"), ("\\leq", "\\le"), ("\\geq", "\\ge"),
    ("<=", "\\le"), (">=", "\\ge"), ("≤", "\\le"), ("≥", "\\ge"), ("\\neq", "\\ne"), ("≠", "\\ne"),
    ("\\lt", "<"), ("\\gt", ">"), ("−", "-"), ("–", "-"), ("π", "\\pi "), ("∞", "\\infty"),
    ("×", "\\times "), ("·", "\\cdot "), ("÷", "\\div "), ("√", "\\sqrt"), ("∪", "\\cup "),
    ("°", "^\\circ"), ("\\degree", "^\\circ"), ("^{\\circ}", "^\\circ"),
    ("\\varnothing", "\\emptyset"), ("∅", "\\emptyset"), ("\\langle", "("), ("\\rangle", ")"),
    ("⟨", "("), ("⟩", ")"), ("\\$", ""), ("¥", ""), ("€", ""), ("£", ""), ("\\mid", "|"),
    ("∈", "\\in "),
]
_WRAPPERS = re.compile(
    r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mathit|mathsf|mbox|operatorname|rm|bf)\s*"
    r"\{([^{}]*)\}"
)
_UNIT_WORD = r"(?:[A-Za-z]+|[\u4e00-\u9fff]+)(?:\^\{?[23]\}?|[²³])?"
_UNIT_TAIL = re.compile(
    rf"(?<![\\A-Za-z])(?:[A-Za-z]{{2,}}|[\u4e00-\u9fff]+)(?:\^\{{?[23]\}}?|[²³])?"
    rf"(?:[\s./]+{_UNIT_WORD})*$"
)
_NOT_UNITS = re.compile(r"\b(?:and|or|i|e|pi|sqrt|frac|infty|sin|cos|tan|log|ln)\b")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:(,|\s)\d{3})(?:\1\d{3})*(?:\.\d+)?")


def clean(answer: str) -> str:
    """Canonical surface form: fullwidth folded, math delimiters, spacing macros, \\left/\\right,
    \\text{} wrappers, currency, trailing unit words and thousands separators removed."""
    s = answer.translate(_FULLWIDTH)[:MAX_ANSWER]
    for old, new in _SUBS:
        s = s.replace(old, new)
    s = re.sub(r"(?<!\\)\\ ", " ", s)  # "\ " is a space, but a row break stays
    s = re.sub(r"^\s*\$(?=\s*[\d.])(?![^$]*\$)", "", s)  # a leading price sign, "$18"
    s = _strip_delimiters(s)
    for _ in range(3):
        s = _WRAPPERS.sub(r"\1", s)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt\s*(\d+|[a-z])", r"\\sqrt{\1}", s)
    s = re.sub(r"(?:\\|\b)sqrt\s*\(([^()]*)\)", r"\\sqrt{\1}", s)  # sqrt(2), \sqrt(2)
    s = re.sub(r"(?<![\\A-Za-z])pi\b", r"\\pi", s).replace("**", "^")
    s = re.sub(r"(?i)\b(?:infinity|inf)\b", r"\\infty", s)
    s = re.sub(r"(^|[(\[,\s])\+\s*\\infty", r"\1\\infty", s)
    s = re.sub(r"\s*\b(?:degrees?)\b", r"^\\circ", s)
    s = re.sub(r"\s*\bpercent\b", r"\\%", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = _strip_units(s)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "").replace(" ", "")
    return _strip_delimiters(s)


def _strip_delimiters(s: str) -> str:
    for _ in range(4):
        before = s
        s = s.strip().rstrip(".。;；").strip()
        if s.startswith("**") and s.endswith("**") and len(s) > 4:
            s = s[2:-2]
        for open_, close in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(open_) and s.endswith(close) and len(s) >= len(open_) + len(close):
                s = s[len(open_) : len(s) - len(close)]
        if s == before:
            break
    return s.strip()


def _strip_units(s: str) -> str:
    offset = max(0, len(s) - 80)  # units are short: searching only the tail keeps this linear
    match = _UNIT_TAIL.search(s, offset)
    if not match or _NOT_UNITS.search(match.group(0)):
        return s
    head = s[: match.start()].strip()
    return head if re.search(r"(?:[\d}]|\\pi)$", head) else s


def split_flags(s: str) -> tuple[str, bool, bool]:
    """(answer without a trailing percent / degree mark, had_percent, had_degrees)."""
    pct = deg = False
    match = re.search(r"\s*\\?%\s*$", s)
    if match:
        s, pct = s[: match.start()], True
    match = re.search(r"\s*(?:\^\s*\\circ|\^\s*\{\s*\\circ\s*\}|\\circ)\s*$", s)
    if match:
        s, deg = s[: match.start()], True
    return s.strip(), pct, deg


# ---------------------------------------------------------------------------------------------
# Plain numbers (the fast path) and choice letters

_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_SLASH = re.compile(r"([+-]?\d+)/([+-]?\d+)")
_FRAC = re.compile(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}")
_MIXED = re.compile(r"([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}")
_SCI = re.compile(r"([+-]?\d+(?:\.\d+)?)(?:(?:\\times|\\cdot|\*)10\^\{?([+-]?\d{1,3})\}?|e([+-]?\d{1,3}))")
_CHOICE_ANSWER = re.compile(r"\(?([A-E])\)?(?:[.．、:\s]\s*.*)?", re.S)


def parse_number(s: str) -> tuple[Fraction, int | None] | None:
    """(exact value, decimal places when written as a decimal) of a plain number, else None.

    Plain numbers: integers, decimals, a/b, \\frac{a}{b}, mixed numbers 2\\frac{1}{4}, and
    scientific notation 1.5\\times10^{3} / 1.5e3 with exponents of at most three digits."""
    s = s.replace(" ", "")
    if not s or len(s) > 60:
        return None
    try:
        if _DECIMAL.fullmatch(s):
            places = len(s.split(".", 1)[1]) if "." in s else None
            return Fraction(s), places
        if match := _SLASH.fullmatch(s):
            return Fraction(int(match[1]), int(match[2])), None
        if match := _FRAC.fullmatch(s):
            value = Fraction(int(match[2]), int(match[3]))
            return (-value if match[1] == "-" else value), None
        if match := _MIXED.fullmatch(s):
            value = int(match[2]) + Fraction(int(match[3]), int(match[4]))
            return (-value if match[1] == "-" else value), None
        if match := _SCI.fullmatch(s):
            return Fraction(match[1]) * Fraction(10) ** int(match[2] or match[3]), None
    except (ValueError, ZeroDivisionError):
        return None
    return None


def choice_letter(s: str) -> str | None:
    """The option letter of a multiple-choice answer ("C", "(C)", "C. 1-i"), else None."""
    match = _CHOICE_ANSWER.fullmatch(s.strip())
    return match.group(1) if match else None


def _reading(s: str) -> tuple[Fraction, int | None, bool] | None:
    body, pct, _deg = split_flags(s)
    if _THOUSANDS.fullmatch(body):
        body = body.replace(",", "").replace(" ", "")
    number = parse_number(body)
    return (number[0], number[1], pct) if number else None


def _rounds_to(value: Fraction, places: int) -> Fraction:
    scaled = abs(value) * 10**places
    rounded = Fraction(int(scaled + Fraction(1, 2)), 10**places)
    return rounded if value >= 0 else -rounded


def numbers_equal(pred: tuple, gold: tuple) -> bool:
    """Plain-number rule. A percent sign on either side allows both readings (50% as 50 and 0.5);
    without one, 0.5 != 50. A gold decimal with >= 2 places accepts an exact (non-decimal)
    prediction that rounds to it; decimal predictions must match exactly."""
    (pv, p_places, p_pct), (gv, g_places, g_pct) = pred, gold
    for a in [pv] + ([pv / 100] if p_pct else []):
        for b in [gv] + ([gv / 100] if g_pct else []):
            if a == b:
                return True
            if g_places is not None and g_places >= 2 and p_places is None:
                if _rounds_to(a, g_places) == b:
                    return True
    return False


_LABEL = re.compile(
    r"[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?'*|[A-Za-z]\([a-z]\)"
    r"|\\(?:alpha|beta|gamma|delta|theta|phi|varphi|lambda|mu|omega|rho|sigma|tau)"
)


def split_label(s: str) -> tuple[str | None, str]:
    """("x", "3") for "x = 3" / "x \\in ..." with a one-symbol label on the left, else (None, s)."""
    match = re.fullmatch(r"(.{1,12}?)\s*(?:=|\\in(?![A-Za-z]))\s*(.+)", s, re.S)
    if match and _LABEL.fullmatch(match[1].strip()) and "=" not in match[2]:
        return match[1].strip(), match[2].strip()
    return None, s


_BASE = re.compile(r"([0-9A-Z]+)_\{?\(?(\d{1,2})\)?\}?")


def _base_equal(pred: str, gold: str) -> bool | None:
    """Numbers with a base subscript (4343_6): equal digits, or equal values where both parse.
    A bare prediction is read in the gold's base (models drop the subscript)."""
    p, g = _BASE.fullmatch(pred), _BASE.fullmatch(gold)
    p_digits, g_digits = (p[1] if p else pred), (g[1] if g else gold)
    if not re.fullmatch(r"[0-9A-Z]+", p_digits) or not re.fullmatch(r"[0-9A-Z]+", g_digits):
        return None
    p_base, g_base = (p[2] if p else g[2] if g else "10"), (g[2] if g else "10")
    if p_digits == g_digits and int(p_base) == int(g_base):
        return True
    p_value, g_value = _base_value(p_digits, p_base), _base_value(g_digits, g_base)
    return p_value is not None and p_value == g_value


def _base_value(digits: str, base: str) -> int | None:
    try:
        return int(digits, int(base)) if 2 <= int(base) <= 36 else None
    except ValueError:
        return None


def _key(s: str) -> str:
    return s.replace(" ", "")


def fast_equal(pred: str, gold: str) -> bool | None:
    """Verdict from string and plain-number rules alone, or None when symbolic work is needed.

    Cheap and hang-free (bounded string work, exact Fractions of <= 60-character numbers), so it
    runs in the caller's process; `tasks.verify.is_equivalent` calls it first, so both agree."""
    p, g = clean(pred), clean(gold)
    if _key(p) == _key(g):
        return True
    gold_letter = choice_letter(g) if re.fullmatch(r"\(?[A-E]\)?(?:[.．、]\s.*)?", g, re.S) else None
    if gold_letter:
        return (choice_letter(p) == gold_letter) if choice_letter(p) else None
    (p_label, p), (g_label, g) = split_label(p), split_label(g)
    if p_label and g_label and p_label != g_label:
        return False
    if _BASE.fullmatch(_key(p)) or _BASE.fullmatch(_key(g)):
        return _base_equal(_key(p), _key(g))
    p_num, g_num = _reading(p), _reading(g)
    if p_num and g_num:
        return numbers_equal(p_num, g_num)
    atoms = ("\\infty", "-\\infty")
    if (p_num or p in atoms) and (g_num or g in atoms):
        return _key(p) == _key(g)
    return None


# ---------------------------------------------------------------------------------------------
# Structure: an answer as a small tree that tasks.verify walks. Nodes are tuples:
# ("leaf", s) ("text", key) ("set", items) unordered ("seq", open, close, items) ordered
# ("union", parts) ("matrix", rows) ("eq", label_or_lhs, rhs_node, rhs_str, is_label)

_OPEN, _CLOSE = "([{", ")]}"
_MATRIX = re.compile(
    r"\\begin\{(pmatrix|bmatrix|vmatrix|Bmatrix|matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S
)
_LIST_SEP = re.compile(r",|;|\s+(?:and|or)\s+|或|和|且|及")
_RELATION = re.compile(r"\\le(?![A-Za-z])|\\ge(?![A-Za-z])|<|>")
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "frac", "max", "min",
               "gcd", "lcm", "det", "mod", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh"}
_INF = ("leaf", "\\infty")
_NEG_INF = ("leaf", "-\\infty")


def split_top(s: str, sep: re.Pattern) -> list[str]:
    """Split s where sep matches outside any bracket."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        char = s[i]
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth -= 1
        elif depth == 0 and (match := sep.match(s, i)) and match.end() > i:
            parts.append(s[start:i])
            start = i = match.end()
            continue
        i += 1
    return [part.strip() for part in parts + [s[start:]]]


def _outer(s: str) -> tuple[str, str, str] | None:
    """(open, close, inner) when one bracket pair wraps the whole of s."""
    if s.startswith("\\{") and s.endswith("\\}"):
        s, braces = "{" + s[2:-2] + "}", True
    else:
        braces = False
    if len(s) < 2 or s[0] not in _OPEN or s[-1] not in _CLOSE:
        return None
    depth = 0
    for i, char in enumerate(s):
        depth += (char in _OPEN) - (char in _CLOSE)
        if depth == 0 and i < len(s) - 1:
            return None
    return ("{" if braces else s[0]), s[-1], s[1:-1].strip()


def _interval(rel: str) -> tuple | None:
    """"x > 2" -> ("seq", "(", ")", [2, oo]); "-1 \\le x < 3" -> [-1, 3); else None."""
    tokens = [t.strip() for t in re.split(r"(\\le(?![A-Za-z])|\\ge(?![A-Za-z])|<|>)", rel)]
    if len(tokens) == 3 and _LABEL.fullmatch(tokens[2]):
        flip = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}
        tokens = [tokens[2], flip[tokens[1]], tokens[0]]
    if len(tokens) == 3 and _LABEL.fullmatch(tokens[0]) and tokens[2]:
        closed = tokens[1] in ("\\le", "\\ge")
        if tokens[1] in (">", "\\ge"):
            return ("seq", "[" if closed else "(", ")", [("leaf", tokens[2]), _INF])
        return ("seq", "(", "]" if closed else ")", [_NEG_INF, ("leaf", tokens[2])])
    less = {"<": True, "\\le": True, ">": False, "\\ge": False}
    if len(tokens) == 5 and _LABEL.fullmatch(tokens[2]) and less[tokens[1]] == less[tokens[3]]:
        low, high, ops = tokens[0], tokens[4], (tokens[1], tokens[3])
        if tokens[1] in (">", "\\ge"):
            low, high, ops = high, low, (tokens[3], tokens[1])
        return ("seq", "[" if ops[0] in ("\\le", "\\ge") else "(",
                "]" if ops[1] in ("\\le", "\\ge") else ")", [("leaf", low), ("leaf", high)])
    return None


def _is_text(s: str) -> bool:
    if re.search(r"[\u4e00-\u9fff]", s):
        return True
    if re.search(r"[\d\\^_=+*/]", s):
        return False
    words = re.findall(r"[A-Za-z]+", s)
    return s.lower() in ("yes", "no") or any(len(w) >= 3 and w.lower() not in _MATH_WORDS
                                               for w in words)


def text_key(s: str) -> str:
    sign = "-" if s.strip().startswith("-") else ""
    return sign + re.sub(r"[^0-9a-z\u4e00-\u9fff]", "", s.lower())


def parse_structure(s: str, depth: int = 0) -> tuple:
    """The tree of one cleaned answer (see the node list above)."""
    s = _strip_delimiters(s)
    if depth > MAX_DEPTH or not s:
        return ("leaf", s)
    if _THOUSANDS.fullmatch(s):
        return ("leaf", s.replace(",", "").replace(" ", ""))
    if s in ("\\mathbb{R}", "\\mathbb R", "\\R"):
        return ("seq", "(", ")", [_NEG_INF, _INF])
    if s in ("\\emptyset", "\\{\\}", "{}"):
        return ("set", [])
    if match := _MATRIX.fullmatch(s):
        rows = [row for row in re.split(r"\\\\", match[2]) if row.strip()]
        return ("matrix", [[("leaf", cell.strip()) for cell in row.split("&")] for row in rows])
    parts = split_top(s, re.compile(r"\\cup(?![A-Za-z])"))
    if len(parts) > 1:
        return ("union", [parse_structure(p, depth + 1) for p in parts])
    single = len(split_top(s, _LIST_SEP)) == 1
    if split_label(s)[0] or len(split_top(s, re.compile("="))) == 2 or (single and "=" in s):
        return _equation(s, depth)
    parts = split_top(s, _LIST_SEP)
    if len(parts) > 1:
        return ("set", [parse_structure(p, depth + 1) for p in parts if p])
    return _bracketed(s, depth)


def _equation(s: str, depth: int) -> tuple:
    label, rhs = split_label(s)
    if label:
        return ("eq", label, parse_structure(rhs, depth + 1), rhs, True)
    sides = split_top(s, re.compile("="))
    if len(sides) < 2 or not sides[0] or not sides[-1]:
        return ("leaf", s)
    return ("eq", sides[0], ("leaf", sides[-1]), sides[-1], False)


def _bracketed(s: str, depth: int) -> tuple:
    if outer := _outer(s):
        open_, close, inner = outer
        items = split_top(inner, re.compile(","))
        if open_ == "{":
            return _set_builder(inner, depth) or ("set", [parse_structure(i, depth + 1)
                                                           for i in items if i])
        if len(items) > 1:
            return ("seq", open_, close, [parse_structure(i, depth + 1) for i in items])
        return parse_structure(inner, depth + 1)
    if (sign := re.search(r"\\pm|\\mp", s)) and not re.search(r"\\pm|\\mp", s[sign.end():]):
        plus, minus = s[: sign.start()] + "+" + s[sign.end():], s[: sign.start()] + "-" + s[sign.end():]
        return ("set", [parse_structure(plus, depth + 1), parse_structure(minus, depth + 1)])
    if _RELATION.search(s) and (interval := _interval(s)):
        return interval
    return ("text", text_key(s)) if _is_text(s) else ("leaf", s)


def _set_builder(inner: str, depth: int) -> tuple | None:
    """{x | x > 2} and {x : -1 < x < 3 or x > 5} as intervals; None when it is not one."""
    match = re.fullmatch(r"\s*([A-Za-z])\s*(?:\||:)\s*(.+)", inner, re.S)
    if not match:
        return None
    conds = split_top(match[2], _LIST_SEP)
    intervals = [_interval(c) for c in conds]
    if not all(intervals):
        return None
    return intervals[0] if len(intervals) == 1 else ("union", intervals)
