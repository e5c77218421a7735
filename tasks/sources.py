"""Problem files: JSONL / Parquet rows -> {id, source, lang, question, gold}, bad rows reported.

    from tasks.sources import read_problems, load_eval_sets
    rows, bad = read_problems("../shared/data/decontam/gsm8k/train.jsonl")
    evals = load_eval_sets(["../shared/data/benchmarks"])      # {"gsm8k": [...], "math500": [...]}

Understands the layouts under ../shared/data (QwenLM/Qwen2.5-Math `evaluation/data/<name>/` and the
original GSM8K / MATH files) without configuration; `field_map` names other columns, e.g.
{"question": "prompt", "gold": "target", "id": "uid", "lang": "language"}.

Field rules, first hit wins:
- question: `question`, then `problem`. A list of `choices` (MMLU-STEM) is appended as "A. ..." lines.
- gold: `final_answer` (a list, joined with ", "), `choice_answer` (a letter), `answer` (GSM8K's
  text after the last `####`; an integer index into `choices` becomes a letter; 27.0 -> "27"), the
  last `\\boxed{...}` of `solution` (nested braces); otherwise None (the majority vote decides).
- id: `id`, `idx`, `unique_id`, else the 1-based line (Parquet: row) number; always a string.
- lang: the row's `lang` field, else "zh" when the question has a CJK character, else "en".

A bad row (not UTF-8, invalid JSON, not an object, question missing, empty or not text) is never
dropped silently: it is returned as {file, line, field, reason}, or with on_bad="error" raises
ValueError. A file without a single usable row raises ValueError naming the file.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Literal

ID_FIELDS = ("id", "idx", "unique_id")
QUESTION_FIELDS = ("question", "problem")
SPLIT_NAMES = {"test", "train", "validation", "valid", "dev", "eval"}
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


# ---------------------------------------------------------------------------------------------
# Records: one (line, dict | None, error) per row, for JSONL and Parquet alike

def iter_records(path: str | Path, batch_rows: int = 4096) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line, record, error) for each row; record is None when error says why.
    Streams: a Parquet file is read batch by batch, a JSONL file line by line. Blank lines are
    not rows."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        line = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
            for rec in batch.to_pylist():
                line += 1
                yield line, rec, None
        return
    with open(path, "rb") as f:  # decoded line by line: one bad byte spoils its line, not the file
        for line, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8-sig" if line == 1 else "utf-8")
            except UnicodeDecodeError as e:
                yield line, None, f"not UTF-8: byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the line"
                continue
            if text.strip():
                yield line, *parse_line(text)


def parse_line(text: str) -> tuple[dict | None, str | None]:
    """(record, None) for a JSON object line, else (None, why not)."""
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"invalid JSON: {e.msg} at column {e.colno}"
    if not isinstance(rec, dict):
        return None, f"not a JSON object ({type(rec).__name__})"
    return rec, None


def row_id(rec: dict, line: int, field: str | None = None) -> str:
    """The row's own id (`field`, else id / idx / unique_id), else its line number."""
    for name in (field,) if field else ID_FIELDS:
        value = rec.get(name)
        if value is not None and value != "":
            return str(value)
    return str(line)


def source_name(path: str | Path) -> str:
    """A short name for a file: `benchmarks/gsm8k/test.jsonl` -> "gsm8k",
    `decontam/gsm8k/train.jsonl` -> "gsm8k/train", `mine.jsonl` -> "mine"."""
    path = Path(path)
    stem = path.name.split(".")[0]
    if stem == "test":
        return path.parent.name
    return f"{path.parent.name}/{stem}" if stem in SPLIT_NAMES else stem


# ---------------------------------------------------------------------------------------------
# Problems

def read_problems(path: str | Path, *, field_map: dict | None = None,
                  on_bad: Literal["skip", "error"] = "skip") -> tuple[list[dict], list[dict]]:
    """All problems of a JSONL or Parquet file, and the bad rows as {file, line, field, reason}."""
    if on_bad not in ("skip", "error"):
        raise ValueError(f"on_bad must be 'skip' or 'error', not {on_bad!r}")
    path, fm = Path(path), field_map or {}
    unknown = set(fm) - {"question", "gold", "answer", "id", "lang"}
    if unknown:
        raise ValueError(f"field_map keys {sorted(unknown)} unknown; use question, gold, id, lang")
    source = source_name(path)
    rows, bad = [], []
    for line, rec, error in iter_records(path):
        field = "-"
        if rec is not None:
            field, error = _question_error(rec, fm.get("question"))
        if error:
            report = {"file": str(path), "line": line, "field": field, "reason": error}
            if on_bad == "error":
                raise ValueError(f"{path}:{line}: field {field!r}: {error}")
            bad.append(report)
            continue
        question = _question(rec, fm.get("question"))
        rows.append({
            "id": row_id(rec, line, fm.get("id")), "source": source,
            "lang": _lang(rec, question, fm.get("lang")), "question": question,
            "gold": _gold(rec, fm.get("gold") or fm.get("answer")),
        })
    if not rows:
        if not bad:
            raise ValueError(f"{path}: no rows (the file is empty)")
        first = bad[0]
        raise ValueError(f"{path}: none of its {len(bad)} rows can be used; first: line {first['line']}, "
                         f"field {first['field']!r}: {first['reason']}")
    return rows, bad


def question_field(rec: dict, field: str | None = None) -> str | None:
    """The name of the field holding the question text (None when there is none)."""
    for name in (field,) if field else QUESTION_FIELDS:
        if name in rec and rec[name] is not None:
            return name
    return None


def _question_error(rec: dict, field: str | None) -> tuple[str, str | None]:
    """(the question field, why the row is bad or None)."""
    name = question_field(rec, field)
    if name is None:
        return field or "question", "missing (looked for " + " / ".join((field,) if field else QUESTION_FIELDS) + ")"
    value = rec[name]
    if not isinstance(value, str):
        return name, f"not text ({type(value).__name__})"
    if not value.strip():
        return name, "empty"
    return name, None


def _question(rec: dict, field: str | None) -> str:
    question = rec[question_field(rec, field)].strip()
    choices = rec.get("choices")
    if isinstance(choices, list) and choices and not field:
        question += "\n" + "\n".join(f"{chr(65 + i)}. {c}" for i, c in enumerate(choices))
    return question


def _lang(rec: dict, question: str, field: str | None) -> str:
    value = rec.get(field or "lang")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return "zh" if _CJK.search(question) else "en"


# ---------------------------------------------------------------------------------------------
# Gold answers

def _gold(rec: dict, field: str | None) -> str | None:
    if field:
        return _as_text(rec.get(field))
    final = rec.get("final_answer")
    if isinstance(final, list) and final:
        return _as_text(", ".join(str(x).strip().strip("$").strip() for x in final))
    if rec.get("choice_answer"):
        return _as_text(rec["choice_answer"])
    answer = rec.get("answer")
    if isinstance(answer, str) and "####" in answer:
        return _as_text(answer.rsplit("####", 1)[1])
    if isinstance(answer, int) and not isinstance(answer, bool) and isinstance(rec.get("choices"), list):
        return chr(65 + answer)
    if answer is not None and answer != "":
        return _as_text(answer)
    solution = rec.get("solution")
    if isinstance(solution, list):  # olympiadbench keeps several solutions
        solution = solution[0] if solution else None
    return _as_text(last_boxed(solution)) if isinstance(solution, str) else None


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} / \\fbox{...} in text (nested braces; \\{ \\} are content)."""
    starts = [m.end() - 1 for m in _BOXED.finditer(text)]
    if not starts:
        return None
    i = starts[-1]
    depth, begin = 0, i + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        depth += char == "{"
        depth -= char == "}"
        if depth == 0:
            return text[begin:i]
        i += 1
    return None  # never closed


# ---------------------------------------------------------------------------------------------
# Evaluation sets

def load_eval_sets(specs: list[str], *, on_bad: Literal["skip", "error"] = "error") -> dict[str, list[dict]]:
    """{name: problems} for each spec: a benchmark folder (holding test.jsonl), a folder of such
    folders (`../shared/data/benchmarks`), or a JSONL / Parquet file. Bad rows raise by default:
    an evaluation item that cannot be read cannot be protected."""
    out: dict[str, list[dict]] = {}
    for path in (p for spec in specs for p in _expand(Path(spec))):
        name = source_name(path)
        if name in out:  # decontam/gsm8k/test.jsonl beside benchmarks/gsm8k
            name = f"{path.parent.parent.name}/{name}"
        if name in out:
            raise ValueError(f"two evaluation sets are both named {name!r} (the second is {path})")
        out[name], _ = read_problems(path, on_bad=on_bad)
    return out


def _expand(spec: Path) -> list[Path]:
    if spec.is_file():
        return [spec]
    if (spec / "test.jsonl").is_file():
        return [spec / "test.jsonl"]
    found = sorted(spec.glob("*/test.jsonl")) if spec.is_dir() else []
    if not found:
        raise FileNotFoundError(f"evaluation set {spec}: not a file, a folder with test.jsonl, "
                                "or a folder of benchmark folders")
    return found
