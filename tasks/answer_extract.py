"""Final-answer extraction from model responses, for the `verify` stage.

`extract_answer(response)` returns the final answer string of a CoT or TIR response, or None.
Linear-time scans and bounded regexes only, so it runs in the caller's process on untrusted text.

    python -c "from tasks.answer_extract import extract_answer as e; print(e('so \\\\boxed{42}.'))"
"""

import re

from tasks.answer_norm import MAX_ANSWER

# ---------------------------------------------------------------------------------------------
# Extraction: TIR tail -> final \boxed run or a later answer phrase -> bold -> choice letter ->
# the whole response when it is a bare answer -> math-verify's LaTeX / expression patterns

_BOXED = re.compile(r"\\(?:boxed|fbox)\b\s*")
_PHRASE = re.compile(
    r"(?i:final answer is|the answer is|answer is|final answer\s*[:：]|answer\s*[:：])"
    r"|最终答案是|最终答案\s*[:：]|答案是|答案为|答案\s*[:：]|####"
)
_BOLD = re.compile(r"\*\*([^*\n]{1,200})\*\*")
_CHOICE = re.compile(
    r"(?:(?i:option|choice)\s*(?i:is)?|选项?\s*(?:为|是)?)\s*[:：]?\s*\(?([A-E])\)?(?![A-Za-z])"
)
_BARE_CHOICE = re.compile(r"^\s*\(?([A-E])\)?[.。]?\s*$")
_LABEL_WORDS = {"final answer", "answer", "the answer", "final answer is", "答案", "最终答案"}
# What may stand between two boxes of one multi-part answer: separators, part labels "(b)",
# "y =", and/or; any other word ("then correcting:") means the earlier box was a step. Each
# token is replaced on its own (no repeated group: "i)i)i)..." would backtrack exponentially).
_GLUE_TOKEN = re.compile(
    r"[,;:.&$]|\\[\[\]()]|\\q?quad\b|\\\\|\\text\{\s*(?:and|or|,)?\s*\}|\(?(?:[a-z]|[ivx]{2,4})\)"
    r"|[A-Za-z](?:_\{?\w{1,3}\}?)?\s*&?=|\b(?i:and|or|part|for|the|answers?|is|are|to|of)\b"
)
_BOX_LABEL = re.compile(r"([A-Za-z](?:_\{?\w{1,3}\}?)?)\s*&?=\s*\$?\s*$")
_WORD = re.compile(r"[A-Za-z]{3,}")
_SHORT_WORDS = re.compile(r"(?i)\b(?:so|is|it|we|as|at|be|by|if|of|on|to|an|my|do|us|me)\b")
_MATH_VERIFY_WINDOW = 1200  # math-verify's patterns look at this many final characters (their
# work grows with the square of the length on hostile text: 0.7 s for 3,000 characters)


def extract_answer(response: str, *, truncated: bool = False) -> str | None:
    """The final answer of a model response, or None when there is none.

    Rules, first hit wins: in a TIR response (one with a ```output block) only the text after the
    last output block counts, then that block's last line. Then the final \\boxed{}/\\fbox{}
    (nested braces; boxes joined only by separators, "and"/"or" and part labels are one
    multi-part answer "3, 5"), unless a "final answer" phrase with a math answer comes after it;
    then the last "final answer is" / "The answer is" / "Answer:" / 答案是 / "####" phrase; a bold
    **answer** near the end; a multiple-choice letter ("option B", 选C). With none of those: the
    whole response when it is a bare answer ("1000,99", "$(0;0;0)$"), else math-verify's own
    LaTeX and expression patterns on the end of the text (the last inline math `$x \\geq 5$`, a
    standalone number; never a digit inside a word such as AZYUK2A). A marked answer that is
    empty or longer than MAX_ANSWER characters means no answer.

    truncated=True (generation stopped at its token limit, finish_reason "length"): only marked
    answers count, since the text ends mid-reasoning (SmolLM2's looping MATH-500 responses were
    credited with a stray "... > 4$" for the gold 4).
    """
    if not isinstance(response, str) or not response.strip():
        return None
    text = response.replace("\x00", "")
    tail, output = _split_tir(text)
    if tail is not None:
        found = _marked_answer(tail)
        if found is not None or (found := _last_line(output)):
            return found or None
    found = _marked_answer(text)
    if found is not None:
        return found or None
    return None if truncated else _cap(_unmarked_answer(text))


def _split_tir(text: str) -> tuple[str | None, str]:
    start = text.rfind("```output")
    if start < 0:
        return None, ""
    body_start = start + len("```output")
    end = text.find("```", body_start)
    if end < 0:
        return "", text[body_start:]
    return text[end + 3 :], text[body_start:end]


def _last_line(output: str) -> str | None:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return _cap(lines[-1]) if lines and len(lines[-1]) <= 200 else None


def _marked_answer(text: str) -> str | None:
    """The first rule's answer; "" when a rule matched but its answer is unusable; else None."""
    boxed, boxed_end = _final_boxes(text)
    if boxed is not None:
        later = _last_phrase(text[boxed_end:])  # "\boxed{255} ... The final answer is $10,455$"
        found = later[1] if later and later[0] >= 0 and _usable(later[1]) else boxed
        return _cap(found) or ""
    phrase = _last_phrase(text)
    found = phrase[1] if phrase else None
    if found is None:
        found = _last_bold(text)
    if found is None:
        found = _last_choice(text)
    return None if found is None else _cap(found) or ""


def _usable(answer: str | None) -> bool:
    """A phrase's answer that can overrule a box: math, or a short text with a digit."""
    return bool(answer) and bool(re.search(r"[\d\\]", answer)) and len(_WORD.findall(answer)) < 3


def _cap(answer: str | None) -> str | None:
    if answer is None:
        return None
    answer = answer.strip()
    return answer if 0 < len(answer) <= MAX_ANSWER else None


def _group_at(text: str, pos: int) -> str | None:
    """Content of the brace group opening at text[pos], or None if there is none (bounded).
    Escaped braces \\{ \\} (sets, \\left\\{ ... \\right.) are content, not grouping."""
    if pos >= len(text) or text[pos] != "{":
        return None
    depth, i, end = 0, pos, min(len(text), pos + 2 * MAX_ANSWER)
    while i < end:
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[pos + 1 : i]
        i += 1
    return None


def _boxes(text: str) -> list[tuple[int, int, str | None]]:
    """(start, end, content) of the last 50 boxes with content, in order; content None for a
    last box that never closes."""
    found = []
    for match in list(_BOXED.finditer(text))[-50:]:
        pos = match.end()
        inner = _group_at(text, pos)
        if inner is not None:
            found.append((match.start(), pos + len(inner) + 2, inner))
        elif pos < len(text) and text[pos] == "{":
            found.append((match.start(), len(text), None))
        elif bare := re.match(r"[^\s$]{1,100}", text[pos : pos + 100]):
            found.append((match.start(), pos + bare.end(), bare.group(0)))  # \boxed 5
    last = found[-1:] if found and found[-1][2] is None else []
    return [box for box in found if box[2] and box[2].strip()] + last


def _final_boxes(text: str) -> tuple[str | None, int]:
    """(the final box's content, or the final run of boxes joined as a list, end position)."""
    boxes = _boxes(text)
    if not boxes:
        return ("", -1) if _BOXED.search(text) else (None, -1)  # only empty boxes: no answer
    if boxes[-1][2] is None:
        return "", boxes[-1][1]  # the last box never closes: a truncated answer is no answer
    run = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        glue = text[box[1] : run[0][0]]
        if len(glue) > 120 or _GLUE_TOKEN.sub(" ", glue).strip():
            break
        run.insert(0, box)
    if len(run) == 1:
        return run[0][2], run[0][1]
    parts = []
    for start, _end, inner in run:
        label = _BOX_LABEL.search(text[max(0, start - 20) : start])
        parts.append(f"{label[1]} = {inner.strip()}" if label else inner.strip())
    return ", ".join(parts), run[-1][1]


def _last_boxed(text: str) -> str | None:
    """Content of the last closed box (gold solutions), or None."""
    closed = [box for box in _boxes(text) if box[2] is not None]
    return closed[-1][2] if closed else None


def _answer_span(tail: str) -> tuple[str | None, bool]:
    """(the answer that follows a phrase, whether it was delimited): a $...$ group, else the rest
    of the sentence. "$18." with no closing $ on its line is a price, not math."""
    tail = tail[: 2 * MAX_ANSWER].lstrip(" \t*:：\n")
    line = tail.split("\n", 1)[0]
    for open_, close in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        end = _find_unescaped(tail, close, len(open_)) if tail.startswith(open_) else -1
        price = open_ == "$" and tail[1:2].isdigit() and end > len(line)
        if end > 0 and not price:
            return tail[len(open_) : end], True
    line = re.split(r"[.。!！](?=\s|$)", line, maxsplit=1)[0]
    line = line.strip().strip("*").rstrip(".。,，;；").strip()
    return (line if 0 < len(line) <= 300 else None), False


def _find_unescaped(text: str, token: str, start: int) -> int:
    """Index of the first token at or after start that is not escaped (\\$ is a dollar sign)."""
    i = text.find(token, start)
    while i > 0 and text[i - 1] == "\\" and token.startswith("$"):
        i = text.find(token, i + 1)
    return i


def _last_phrase(text: str) -> tuple[int, str | None] | None:
    """(position, answer) of the last answer phrase, or None without one; the position is -1
    unless it says "final answer" (only those overrule a box). A sentence after the
    phrase ("Final Answer: The largest $n$ is 34") gives the answer inside it, found with
    math-verify's patterns; a sentence without math gives None (later rules look)."""
    last = None
    for last in _PHRASE.finditer(text):
        pass
    if last is None:
        return None
    position = last.start() if re.match(r"(?i)final|最终", last.group(0)) else -1
    span, delimited = _answer_span(text[last.end() :])
    if span and "\\boxed" in span:
        return position, _last_boxed(span)
    if span and not delimited and len(_WORD.findall(_without_wrappers(span))) >= 2:
        if not re.search(r"[\d$\\]", span):
            return None if len(_WORD.findall(span)) >= 5 else (position, span)
        return position, math_verify_extract(span)
    return position, span


def _last_bold(text: str) -> str | None:
    end = text[-600:]
    for match in reversed(list(_BOLD.finditer(end))[-20:]):
        content = match.group(1).strip()
        if content.rstrip(":： ").lower() in _LABEL_WORDS or content.endswith((":", "：")):
            return _answer_span(end[match.end() :])[0]
        if re.search(r"[\d\\$=]", content) or re.fullmatch(r"\(?[A-E]\)?", content):
            return content.strip("$ ")
    return None


def _last_choice(text: str) -> str | None:
    end = text[-600:]
    found = [m.group(1) for m in _CHOICE.finditer(end)]
    if found:
        return found[-1]
    lines = end.strip().splitlines()
    match = _BARE_CHOICE.match(lines[-1]) if lines else None
    return match.group(1) if match else None


def _without_wrappers(s: str) -> str:
    """s without \\text{...}-style groups and LaTeX commands: what is left of its prose."""
    s = re.sub(r"\\(?:text|textbf|mathrm|mbox|operatorname)\s*\{[^{}]*\}", " ", s)
    return re.sub(r"\\[A-Za-z]+", " ", s)


def _unmarked_answer(text: str) -> str | None:
    """A response with no marked answer: the whole of it when it is a bare answer (one short
    line with no prose: "1000,99", "1 1/2", "$(0;0;0)$", "$x=2$ or $x=3$", "185\\"), else
    math-verify's patterns."""
    whole = text.strip()
    return whole.rstrip(".。").strip() if _is_bare(whole) else math_verify_extract(text)


def _is_bare(text: str) -> bool:
    if len(text) > 200 or "\n" in text:
        return False
    if len(re.findall(r"(?<!\\)\$", text)) >= 2 or "\\(" in text:  # math in delimiters: nothing
        outside = re.sub(r"(?<!\\)\$[^$]*(?<!\\)\$|\\\(.*?\\\)", " ", text)  # else but "or"
        return not re.sub(r"\b(?:and|or)\b|[\s,;.]", "", outside)
    prose = _without_wrappers(text)
    return not _WORD.search(prose) and not _SHORT_WORDS.search(prose)


def math_verify_extract(text: str) -> str | None:
    """The answer string math-verify's LaTeX and expression extraction would pick, without its
    sympy parsing: its patterns by priority (answer phrases, then plain inline math, numbers and
    expressions), the rightmost match within a priority. Only the last _MATH_VERIFY_WINDOW
    characters are searched (from a line start), which bounds the regex work on long text."""
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig, get_extraction_regexes

    if len(text) > _MATH_VERIFY_WINDOW:
        text = text[-_MATH_VERIFY_WINDOW:]
        text = text[text.find("\n") + 1 :] if "\n" in text[:500] else text
    configs = (LatexExtractionConfig(boxed_match_priority=-1), ExprExtractionConfig())
    patterns = sorted(((priority, pattern) for regexes, _ in get_extraction_regexes(configs)
                       for pattern, priority in regexes), key=lambda item: item[0])
    best, best_priority = None, None
    for priority, pattern in patterns:
        if best is not None and priority != best_priority:
            break
        for match in pattern.finditer(text):
            if best is None or (match.end(), -match.start()) > (best.end(), -best.start()):
                best, best_priority = match, priority
    return _match_text(best) if best is not None else None


def _match_text(match: re.Match) -> str | None:
    """The answer text of one math-verify match: its LaTeX group(s) joined as a list, or its
    number / expression (a percent sign kept)."""
    groups = {name: value for name, value in match.groupdict().items() if value}
    latex = [value for name, value in groups.items() if "_latex" in name]
    if latex:
        percent = "\\%" if any(name.endswith("percent") for name in groups) and len(latex) == 1 else ""
        return ", ".join(part.strip() for part in latex) + percent
    if "expr" in groups:
        return groups["expr"].strip()
    number = "".join(value for name, value in groups.items() if name.startswith(("integer", "decimal")))
    return (number + ("\\%" if "percent" in groups else "")) if number else None


# ---------------------------------------------------------------------------------------------
# Gold answers of the evaluation sets (QwenLM/Qwen2.5-Math evaluation/data layout)


def benchmark_gold(benchmark: str, row: dict) -> str | None:
    """The gold answer string of one row of `<benchmark>/test.jsonl`, or None if it has none.
    Unescaped $ signs are dropped: olympiadbench writes lists as "8$,$4"."""
    gold = _raw_gold(benchmark, row)
    return re.sub(r"(?<!\\)\$", "", gold).strip() or None if gold else None


def _raw_gold(benchmark: str, row: dict) -> str | None:
    if benchmark == "gsm8k":
        return row["answer"].split("####")[-1].strip()
    if benchmark == "minerva_math":
        return _last_boxed(row["solution"]) or None
    if benchmark == "mmlu_stem":
        return "ABCD"[int(row["answer"])]
    if benchmark == "olympiadbench":
        return row["final_answer"][0].strip().strip("$").strip() if row["final_answer"] else None
    if benchmark in ("cn_middle_school", "gaokao2024_mix") and row.get("choice_answer"):
        return str(row["choice_answer"]).strip()
    answer = row.get("answer")
    if isinstance(answer, float) and answer.is_integer():
        return str(int(answer))
    return None if answer is None else str(answer).strip()
