"""An answer string as a small tree, for the `verify` stage: sets, tuples, intervals, equations.

`parse_structure(clean(answer))` returns nested tuples that `tasks.verify` walks, comparing leaves
with `tasks.answer_sympy.leaf_equal`. String work with bounded regexes and a depth cap only:
safe in the caller's process on untrusted text.

    python -c "from tasks.answer_structure import parse_structure as p; print(p('(1, 2] \\\\cup [3, 4)'))"

Nodes: ("leaf", s) ("text", key) ("set", items) unordered ("seq", open, close, items) ordered
("union", parts) ("matrix", rows) ("eq", label_or_lhs, rhs_node, rhs_str, is_label)
"""

import re

from tasks.answer_norm import LABEL, MAX_DEPTH, THOUSANDS, split_label, strip_delimiters


_OPEN, _CLOSE = "([{", ")]}"
_MATRIX = re.compile(
    r"\\begin\{(pmatrix|bmatrix|vmatrix|Bmatrix|matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", re.S
)
_LIST_SEP = re.compile(  # "or" may touch a bracket: (1,2)or(3,4)
    r",|;|\s+(?:and|or)\s+|(?<=[)\]])\s*(?:and|or)\b\s*|\s*\b(?:and|or)\s*(?=[(\[])|或|和|且|及"
)
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
    if len(tokens) == 3 and LABEL.fullmatch(tokens[2]):
        flip = {"<": ">", ">": "<", "\\le": "\\ge", "\\ge": "\\le"}
        tokens = [tokens[2], flip[tokens[1]], tokens[0]]
    if len(tokens) == 3 and LABEL.fullmatch(tokens[0]) and tokens[2]:
        closed = tokens[1] in ("\\le", "\\ge")
        if tokens[1] in (">", "\\ge"):
            return ("seq", "[" if closed else "(", ")", [("leaf", tokens[2]), _INF])
        return ("seq", "(", "]" if closed else ")", [_NEG_INF, ("leaf", tokens[2])])
    less = {"<": True, "\\le": True, ">": False, "\\ge": False}
    if len(tokens) == 5 and LABEL.fullmatch(tokens[2]) and less[tokens[1]] == less[tokens[3]]:
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
    s = strip_delimiters(s)
    if depth > MAX_DEPTH or not s:
        return ("leaf", s)
    if THOUSANDS.fullmatch(s):
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
    if s.startswith("(a)") and "(b)" in s:  # "(a) 5 (b) 7": the parts of a multi-part answer
        parts = re.split(r"\s*\([a-h]\)\s*", s)[1:]
        return ("set", [parse_structure(p.strip(" ,;"), depth + 1) for p in parts])
    single = len(split_top(s, _LIST_SEP)) == 1
    if split_label(s)[0] or len(split_top(s, re.compile("="))) == 2 or (single and "=" in s):
        return _equation(s, depth)
    parts = split_top(s, _LIST_SEP)
    if len(parts) > 1:
        return ("set", [parse_structure(p, depth + 1) for p in parts if p])
    return _bracketed(s, depth)


def _equation(s: str, depth: int) -> tuple:
    """An equation node. A tuple label with a tuple of values, (x, y) = (1, 2), is the labelled
    parts x = 1, y = 2; a computation, 2(1+3) = 8, is its result."""
    label, rhs = split_label(s)
    if label:
        node = parse_structure(rhs, depth + 1)
        names = [n.strip() for n in label.strip("()").split(",")] if label.startswith("(") else []
        if len(names) > 1 and node[0] == "seq" and len(node[3]) == len(names):
            return ("set", [("eq", n, item, "", True) for n, item in zip(names, node[3])])
        return ("eq", label, node, rhs, True)
    sides = split_top(s, re.compile("="))
    if len(sides) < 2 or not sides[0] or not sides[-1]:
        return ("leaf", s)
    arithmetic = re.sub(r"\\(?:frac|dfrac|cdot|times|div|sqrt)\b", "+", sides[0])
    if not re.search(r"[A-Za-z]", arithmetic) and re.search(r"\d\s*[-+*/^(]", arithmetic):
        return parse_structure(sides[-1], depth + 1)
    return ("eq", sides[0], parse_structure(sides[-1], depth + 1), sides[-1], False)


def _bracketed(s: str, depth: int) -> tuple:
    if outer := _outer(s):
        open_, close, inner = outer
        items = split_top(inner, re.compile("[,;]"))  # (0;0;0) as written in some countries
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
