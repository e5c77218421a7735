"""Cheap string-level normalisation of answers for the `verify` stage.

`clean`, `split_flags`, `parse_number` and `split_label` turn an answer string into the
canonical pieces that `tasks.verify` compares, and `fast_equal` decides what plain strings and
numbers can decide (decimal commas, mixed numbers, clock times, and `approximates`, the rule for a
decimal standing in for an exact gold). Everything here is string work with bounded regexes and
no sympy, on answers capped at `MAX_ANSWER` characters, so it is safe to run in the caller's
process on untrusted text. Structure lives in `tasks/answer_structure.py`, the symbolic part (run
under a hard time limit) in `tasks/answer_sympy.py`.

    python -c "from tasks.answer_norm import fast_equal; print(fast_equal('\\\\dfrac12', '0.5'))"
"""

import re
from fractions import Fraction

MAX_ANSWER = 2000  # a longer "answer" is not an answer; the cap bounds all later work
MAX_DEPTH = 12  # nesting depth parse_structure follows; deeper input is compared as one leaf
REL_TOL = 1e-12  # numbers this close are equal (float noise such as 0.30000000000000004)
MIN_SIGNIFICANT = 5  # a decimal standing in for an exact gold needs this many significant digits

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
# A unit is set apart from its number (a space, or a \text{} group, which clean turns into a
# space): letters glued to a number are a product (10cm is 10*c*m, like 2x). CJK units may touch.
_UNIT_TAIL = re.compile(
    rf"(?:(?<=\s)[A-Za-z]{{2,}}|(?<![\\A-Za-z])[\u4e00-\u9fff]+)(?:\^\{{?[23]\}}?|[²³])?"
    rf"(?:[\s./]+{_UNIT_WORD})*$"
)
_TEXT_UNIT = re.compile(
    r"(?<=[\d}])\s*\\(?:text|mbox|textrm|mathrm)\s*\{\s*(?!(?:i|e)\s*\})[A-Za-z]+(?:\s+[A-Za-z]+)*\s*\}"
    r"(?:\^\{?[23]\}?|[²³])?\s*$"
)
_REMARK = re.compile(r"(?<=\S)\s*\\text\{\s*\((?=[^(){}]*?[A-Za-z]{3})[^(){}]*\)\s*\}\s*$")
_NOT_UNITS = re.compile(r"\b(?:and|or|i|e|pi|sqrt|frac|infty|sin|cos|tan|log|ln)\b")
_PLAIN = re.compile(r"-?\d{1,30}(?:\.\d{1,30})?")
THOUSANDS = re.compile(r"-?[1-9]\d{0,2}(?:(,|\s)\d{3})(?:\1\d{3})*(?:\.\d+)?")  # never "0,111"


def clean(answer: str) -> str:
    """Canonical surface form: fullwidth folded, math delimiters, spacing macros, \\left/\\right,
    \\text{} wrappers, currency, trailing unit words and thousands separators removed."""
    s = answer.translate(_FULLWIDTH)[:MAX_ANSWER]
    if _PLAIN.fullmatch(s):
        return s  # most GSM8K answers and golds: nothing to clean
    s = re.sub(r",\\!\s*", ",", s)  # 10,\! 455: LaTeX's thousands separator, maybe a space after
    for old, new in _SUBS:
        s = s.replace(old, new)
    s = re.sub(r"(?<!\\)\\ ", " ", s)  # "\ " is a space, but a row break stays
    if "$" in s:
        s = re.sub(r"^\s*\$(?=\s*[\d.])(?![^$]*\$)", "", s)  # a leading price sign, "$18"
        s = re.sub(r"^([^$]*\d)\s*\$\s*$", r"\1", s)  # a trailing one, "2,74 $"
    s = strip_delimiters(s).replace("$", " ")  # math delimiters inside: "$x=2$ or $x=3$"
    if "\\" in s:
        s = _REMARK.sub("", s)  # 5 \text{(checked)}: a remark, not part of the answer
        if not re.search(r"[,;]", s):  # 2 \mbox{ m}: a text group after a number, even one letter
            s = _TEXT_UNIT.sub("", s)
        for _ in range(3):
            s = _WRAPPERS.sub(_unwrap, s)
        s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
        s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
        s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", s)
    if re.search(r"[A-Za-z*\u4e00-\u9fff]", s):
        s = re.sub(r"\\sqrt\s*(\d+|[a-z])", r"\\sqrt{\1}", s)
        s = re.sub(r"(?:\\|\b)sqrt\s*\(([^()]*)\)", r"\\sqrt{\1}", s)  # sqrt(2), \sqrt(2)
        s = re.sub(r"(?<![\\A-Za-z])pi\b", r"\\pi", s).replace("**", "^")
        s = re.sub(r"(?i)\b(?:infinity|inf)\b", r"\\infty", s)
        s = re.sub(r"(^|[(\[,\s])\+\s*\\infty", r"\1\\infty", s)
        s = re.sub(r"\s*\b(?:degrees?)\b", r"^\\circ", s)
        s = re.sub(r"\s*\bpercent\b", r"\\%", s)
        s = _strip_units(re.sub(r"\s+", " ", s).strip())
    s = re.sub(r"\s+", " ", s).strip()
    if THOUSANDS.fullmatch(s):
        s = s.replace(",", "").replace(" ", "")
    return strip_delimiters(s)


def _unwrap(match: re.Match) -> str:
    """\\text{ cm} -> " cm": a word from a text group stays apart from the number before it."""
    inner = match[1]
    return f" {inner}" if re.match(r"\s*[A-Za-z]{2,}", inner) else inner


def strip_delimiters(s: str) -> str:
    for _ in range(4):
        before = s
        s = re.sub(r"\\+$", "", s.strip()).strip()  # a trailing backslash or row break: 185\\
        s = s.rstrip(".。;；").strip()
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
_MIXED_SLASH = re.compile(r"([+-]?)(\d+)\s+(\d+)/(\d+)")  # 1 1/2
_SCI = re.compile(r"([+-]?\d+(?:\.\d+)?)(?:(?:\\times|\\cdot|\*)10\^\{?([+-]?\d{1,3})\}?|e([+-]?\d{1,3}))")
_CHOICE_ANSWER = re.compile(r"\(?([A-E])\)?(?:[.．、:\s]\s*.*)?", re.S)
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")  # left after clean only when not a thousands separator
_CLOCK = re.compile(r"\d{1,3}(?::\d{1,3})+")  # 20:34, 20:34:00, and ratios 11:21


def parse_number(s: str) -> tuple[Fraction, int | None] | None:
    """(exact value, decimal places when written as a decimal) of a plain number, else None.

    Plain numbers: integers, decimals, a/b, \\frac{a}{b}, mixed numbers 2\\frac{1}{4} and 1 1/2,
    and scientific notation 1.5\\times10^{3} / 1.5e3 with exponents of at most three digits (its
    places count from the mantissa: 2.3148\\times10^{-3} has 7). Digits split by a space ("1 2")
    are not one number."""
    s = s.strip()
    if not s or len(s) > 60:
        return None
    try:
        if match := _MIXED_SLASH.fullmatch(s):
            whole, num, den = int(match[2]), int(match[3]), int(match[4])
            value = whole + Fraction(num, den) if num < den else None
            return None if value is None else ((-value if match[1] == "-" else value), None)
        if re.search(r"\d\s+\d", s):
            return None
        s = s.replace(" ", "")
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
            exponent = int(match[2] or match[3])
            places = len(match[1].split(".", 1)[1]) - exponent if "." in match[1] else None
            return Fraction(match[1]) * Fraction(10) ** exponent, places
    except (ValueError, ZeroDivisionError):
        return None
    return None


def significant_digits(s: str) -> int:
    """Significant digits of a written decimal ("0.08333" has 4, "2.3148\\times10^{-3}" 5)."""
    mantissa = re.match(r"[+-]?[\d.]*", s.replace(" ", ""))[0]
    return len(mantissa.replace("+", "").replace("-", "").replace(".", "").lstrip("0"))


def approximates(pred: Fraction, gold: Fraction, places: int, significant: int) -> bool:
    """The one rule for a decimal prediction of an exact gold (\\frac{1}{12}, \\sqrt{3}/2, \\pi):
    accepted when it has at least MIN_SIGNIFICANT significant digits and is the gold rounded
    (|difference| <= half a unit of its last digit) or truncated (cut towards zero) there, or when
    it is the gold up to float noise (relative REL_TOL, 0.30000000000000004 for 3/10)."""
    diff, unit = abs(pred - gold), Fraction(1, 10) ** places
    if diff <= Fraction(REL_TOL) * abs(gold):
        return True
    truncated = abs(pred) <= abs(gold) and (pred >= 0) == (gold >= 0) and diff < unit
    return significant >= MIN_SIGNIFICANT and (diff <= unit / 2 or truncated)


def choice_letter(s: str) -> str | None:
    """The option letter of a multiple-choice answer ("C", "(C)", "C. 1-i"), else None."""
    match = _CHOICE_ANSWER.fullmatch(s.strip())
    return match.group(1) if match else None


def _reading(s: str, decimal_comma: bool = False) -> tuple | None:
    """(value, places, percent, significant digits) of a plain number, else None. decimal_comma:
    read "1000,99" (a comma clean left, so not a thousands separator) as 1000.99."""
    body, pct, _deg = split_flags(s)
    if THOUSANDS.fullmatch(body):
        body = body.replace(",", "").replace(" ", "")
    if decimal_comma and _DECIMAL_COMMA.fullmatch(body):
        body = body.replace(",", ".")
    number = parse_number(body)
    return (number[0], number[1], pct, significant_digits(body)) if number else None


def _rounds_to(value: Fraction, places: int) -> Fraction:
    scaled = abs(value) * 10**places
    rounded = Fraction(int(scaled + Fraction(1, 2)), 10**places)
    return rounded if value >= 0 else -rounded


def numbers_equal(pred: tuple, gold: tuple) -> bool:
    """Plain-number rule. A percent sign on either side allows both readings (50% as 50 and 0.5);
    without one, 0.5 != 50. A gold decimal with >= 2 places accepts an exact (non-decimal)
    prediction that rounds to it; a decimal prediction must match a decimal gold exactly, and an
    exact gold as `approximates` says."""
    (pv, p_places, p_pct, p_digits), (gv, g_places, g_pct, _) = pred, gold
    for a in [pv] + ([pv / 100] if p_pct else []):
        for b in [gv] + ([gv / 100] if g_pct else []):
            if a == b:
                return True
            if g_places is not None and g_places >= 2 and p_places is None:
                if _rounds_to(a, g_places) == b:
                    return True
            if g_places is None and p_places is not None and approximates(a, b, p_places, p_digits):
                return True
    return False


def _clock_equal(pred: str, gold: str) -> bool:
    """Times and ratios part by part; seconds of :00 may be added or dropped (20:34 = 20:34:00)."""
    p, g = [int(x) for x in pred.split(":")], [int(x) for x in gold.split(":")]
    if {len(p), len(g)} == {2, 3}:
        longer = p if len(p) == 3 else g
        if longer[2] == 0:
            p, g = p[:2], g[:2]
    return p == g


LABEL = re.compile(
    r"[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?'*|[A-Za-z]\((?:[a-zA-Z]|-?\d+(?:\.\d+)?)\)"  # f(x), f(1)
    r"|\\(?:alpha|beta|gamma|delta|theta|phi|varphi|lambda|mu|omega|rho|sigma|tau)"
    r"|\|?[A-Z]{2,3}\|?|\\overline\{[A-Z]{2}\}"  # segments: AB, |AB|
    r"|\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])+\s*\)"  # a tuple of names: (p, q)
    r"|(?:[A-Za-z](?:_\{?\w{1,3}\}?)?|[A-Z]{2,3})(?:\s*:\s*(?:[A-Za-z](?:_\{?\w{1,3}\}?)?|[A-Z]{2,3}))+"
    # ... a ratio: V_1:V_2, AB:BC
)
_FUNCTION_VALUE = re.compile(r"y|[a-z]\([a-z]\)")  # y = 2x+3 and f(x) = 2x+3 name the same thing


def split_label(s: str) -> tuple[str | None, str]:
    """("x", "3") for "x = 3" / "x \\in ..." with a one-symbol label on the left, else (None, s).
    Labels also name segments (AB, |AB|), tuples of unknowns ((p, q)) and ratios (V_1:V_2)."""
    match = re.fullmatch(r"(.{1,16}?)\s*(?:=|\\in(?![A-Za-z]))\s*(.+)", s, re.S)
    if match and LABEL.fullmatch(match[1].strip()) and "=" not in match[2]:
        return match[1].strip(), match[2].strip()
    return None, s


def same_label(a: str, b: str) -> bool:
    a, b = a.replace(" ", ""), b.replace(" ", "")
    return a == b or bool(_FUNCTION_VALUE.fullmatch(a) and _FUNCTION_VALUE.fullmatch(b))


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
    """s without spaces, except between two digits ("1 2" is not 12)."""
    return re.sub(r"(?<!\d) | (?!\d)", "", s) if " " in s else s


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
    if p_label and g_label and not same_label(p_label, g_label):
        return False
    if _CLOCK.fullmatch(_key(p)) and _CLOCK.fullmatch(_key(g)):
        return _clock_equal(_key(p), _key(g))
    if _BASE.fullmatch(_key(p)) or _BASE.fullmatch(_key(g)):
        return _base_equal(_key(p), _key(g))
    g_num = _reading(g)
    p_num = _reading(p, decimal_comma=g_num is not None)  # "2,74" is 2.74 only for a number gold
    if p_num and g_num:
        return numbers_equal(p_num, g_num)
    atoms = ("\\infty", "-\\infty")
    if (p_num or p in atoms) and (g_num or g in atoms):
        return _key(p) == _key(g)
    return None
