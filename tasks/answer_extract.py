"""Final-answer extraction from model responses, for the `verify` stage.

`extract_answer(response)` returns the final answer string of a CoT or TIR response, or None.
Linear-time scans and bounded regexes only, so it runs in the caller's process on untrusted text.

    python -c "from tasks.answer_extract import extract_answer as e; print(e('so \\\\boxed{42}.'))"
"""

import re

from tasks.answer_norm import MAX_ANSWER

# ---------------------------------------------------------------------------------------------
# Extraction: TIR tail -> last \boxed -> answer phrase -> bold -> choice letter -> last number

_BOXED = re.compile(r"\\(?:boxed|fbox)\b\s*")
_PHRASE = re.compile(
    r"(?i:final answer is|the answer is|answer is|final answer\s*[:：]|answer\s*[:：])"
    r"|答案是|答案为|答案\s*[:：]|####"
)
_BOLD = re.compile(r"\*\*([^*\n]{1,200})\*\*")
_CHOICE = re.compile(
    r"(?:(?i:option|choice)\s*(?i:is)?|选项?\s*(?:为|是)?)\s*[:：]?\s*\(?([A-E])\)?(?![A-Za-z])"
)
_BARE_CHOICE = re.compile(r"^\s*\(?([A-E])\)?[.。]?\s*$")
_LAST_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
_LABEL_WORDS = {"final answer", "answer", "the answer", "final answer is", "答案", "最终答案"}


def extract_answer(response: str, *, truncated: bool = False) -> str | None:
    """The final answer of a model response, or None when there is none.

    Rules, first hit wins: in a TIR response (one with a ```output block) only the text after the
    last output block counts, then that block's last line; then the last \\boxed{}/\\fbox{} (nested
    braces), the last "final answer is" / "The answer is" / "Answer:" / 答案是 / 答案为 / "####"
    phrase, a bold **answer** near the end, a multiple-choice letter ("option B", 选C), and only when
    nothing else is there, the last number in the text. A marked answer that is empty or longer
    than MAX_ANSWER characters means no answer (no fallback to a stray number).

    truncated=True (generation stopped at its token limit, finish_reason "length"): no last-number
    fallback, since the text ends mid-reasoning and its last number is not an answer (SmolLM2's
    looping MATH-500 responses were credited that way: "... > 4$" for the gold 4).
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
    return None if truncated else _cap(_last_number(text))


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
    for rule in (_last_boxed, _last_phrase, _last_bold, _last_choice):
        found = rule(text)
        if found is not None:
            return _cap(found) or ""
    return None


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


def _last_boxed(text: str) -> str | None:
    starts = [m.end() for m in _BOXED.finditer(text)]
    if starts and text[starts[-1] : starts[-1] + 1] == "{" and _group_at(text, starts[-1]) is None:
        return ""  # the last box never closes: a truncated answer is no answer
    for pos in reversed(starts[-50:]):
        inner = _group_at(text, pos)
        if inner is None and pos < len(text) and text[pos] != "{":
            inner = re.match(r"[^\s$]{1,100}", text[pos : pos + 100])
            inner = inner.group(0) if inner else None
        if inner and inner.strip():
            return inner
    return None


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


def _last_phrase(text: str) -> str | None:
    last = None
    for last in _PHRASE.finditer(text):
        pass
    if last is None:
        return None
    span, delimited = _answer_span(text[last.end() :])
    if span and "\\boxed" in span:
        return _last_boxed(span)
    if span and not delimited and len(re.findall(r"[A-Za-z]{2,}", span)) >= 5:
        return None  # a sentence, not an answer: let the later rules look
    return span


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


def _last_number(text: str) -> str | None:
    last = None
    for last in _LAST_NUMBER.finditer(text):
        pass
    return last.group(0).replace(",", "") if last else None


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
