"""Problem loaders: formats of ../shared/data, gold extraction, ids, language, bad rows."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import SHARED_DATA
from tasks.sources import last_boxed, load_eval_sets, read_problems, source_name

needs_data = pytest.mark.skipif(not (SHARED_DATA / "benchmarks").is_dir(), reason="../shared/data missing")


def write_jsonl(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


@pytest.mark.parametrize("row, gold", [
    ({"question": "q", "answer": "She makes 9 * 2 = $18.\n#### 18"}, "18"),
    ({"question": "q", "answer": "#### 1,000 "}, "1,000"),
    ({"problem": "q", "solution": r"so $\boxed{\frac{1}{\sqrt{2}}}$."}, r"\frac{1}{\sqrt{2}}"),
    ({"problem": "q", "solution": r"\boxed{1} then \boxed{\left\{ 1, 2 \right\}}"}, r"\left\{ 1, 2 \right\}"),
    ({"problem": "q", "solution": "no box here"}, None),
    ({"question": "q", "final_answer": ["$2n-2$"]}, "2n-2"),
    ({"question": "q", "final_answer": ["3", "$4$"]}, "3, 4"),
    ({"question": "q", "answer": "-2", "choice_answer": "A"}, "A"),
    ({"question": "q", "choices": ["x", "y", "z"], "answer": 2}, "C"),
    ({"question": "q", "answer": 27.0}, "27"),
    ({"question": "q", "answer": 2.5}, "2.5"),
    ({"question": "q", "answer": None, "solution": r"\boxed{1.6} cm"}, "1.6"),
    ({"question": "q"}, None),
    ({"question": "q", "answer": "  "}, None),
])
def test_gold(tmp_path, row, gold):
    rows, bad = read_problems(write_jsonl(tmp_path / "x.jsonl", [row]))
    assert bad == [] and rows[0]["gold"] == gold


def test_last_boxed_unclosed_and_fbox():
    assert last_boxed(r"\boxed{1 + \frac{2}{3}") is None
    assert last_boxed(r"\fbox{7}") == "7"
    assert last_boxed(r"\boxed {x^{2}}") == "x^{2}"


def test_ids_language_source_and_choices(tmp_path):
    path = write_jsonl(tmp_path / "test.jsonl", [
        {"id": 60, "problem": "P", "question": "Q"},
        {"idx": 3, "question": "芳芳买了一本书有99页？"},
        {"unique_id": "test/algebra/1.json", "problem": "P2"},
        {"question": "Which?", "choices": ["a", "b"], "answer": 1},
        {"question": "Given x", "lang": "en"},
    ])
    rows, _ = read_problems(path)
    assert [r["id"] for r in rows] == ["60", "3", "test/algebra/1.json", "4", "5"]
    assert rows[0]["question"] == "Q"  # question wins over problem
    assert [r["lang"] for r in rows] == ["en", "zh", "en", "en", "en"]
    assert rows[3]["question"] == "Which?\nA. a\nB. b" and rows[3]["gold"] == "B"
    assert {r["source"] for r in rows} == {tmp_path.name}


def test_field_map(tmp_path):
    path = write_jsonl(tmp_path / "mine.jsonl", [{"prompt": "What is 2+2?", "target": 4, "uid": "a"}])
    rows, _ = read_problems(path, field_map={"question": "prompt", "gold": "target", "id": "uid"})
    assert rows == [{"id": "a", "source": "mine", "lang": "en", "question": "What is 2+2?", "gold": "4"}]
    with pytest.raises(ValueError, match="field_map"):
        read_problems(path, field_map={"questoin": "prompt"})


def test_bad_rows_reported_with_file_line_field(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [
        {"question": "fine"}, "{not json", "", {"answer": "1"}, {"question": "   "}, "[1, 2]",
        {"question": 5}, {"problem": "also fine"},
    ])
    rows, bad = read_problems(path)
    assert [r["question"] for r in rows] == ["fine", "also fine"]
    assert [(b["line"], b["field"]) for b in bad] == [(2, "-"), (4, "question"), (5, "question"), (6, "-"), (7, "question")]
    assert all(b["file"] == str(path) for b in bad)
    assert "invalid JSON" in bad[0]["reason"] and "missing" in bad[1]["reason"] and bad[2]["reason"] == "empty"
    with pytest.raises(ValueError, match=r"t\.jsonl:2: field '-': invalid JSON"):
        read_problems(path, on_bad="error")
    with pytest.raises(ValueError, match=r":4: field 'prompt': missing"):
        write_jsonl(path, [{"prompt": "x"}, {"prompt": "y"}, {"prompt": "z"}, {"question": "w"}])
        read_problems(path, field_map={"question": "prompt"}, on_bad="error")


def test_parquet(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"problem": ["a", "", "c"], "answer": ["1", "2", None]}).to_parquet(path)
    rows, bad = read_problems(path)
    assert [(r["id"], r["question"], r["gold"]) for r in rows] == [("1", "a", "1"), ("3", "c", None)]
    assert bad == [{"file": str(path), "line": 2, "field": "problem", "reason": "empty"}]


def test_source_names():
    assert source_name("/d/benchmarks/gsm8k/test.jsonl") == "gsm8k"
    assert source_name("/d/decontam/gsm8k/train.jsonl") == "gsm8k/train"
    assert source_name("/d/x/mine.parquet") == "mine"


@needs_data
def test_real_rows():
    gsm, bad = read_problems(SHARED_DATA / "decontam/gsm8k/train.jsonl")
    assert len(gsm) == 7473 and bad == []
    assert gsm[0]["gold"] == "72" and gsm[0]["id"] == "1" and gsm[0]["question"].startswith("Natalia")
    math, _ = read_problems(SHARED_DATA / "decontam/math/test.jsonl")
    assert len(math) == 5000 and math[0]["gold"] == "2"
    assert all(r["gold"] for r in math)
    m500 = [json.loads(line) for line in open(SHARED_DATA / "benchmarks/math500/test.jsonl")]
    rows, _ = read_problems(SHARED_DATA / "benchmarks/math500/test.jsonl")
    assert [r["id"] for r in rows] == [r["unique_id"] for r in m500]
    assert all(last_boxed(r["solution"]) == r["answer"] for r in m500)  # nested braces included


@needs_data
def test_load_eval_sets_all_benchmarks():
    sets = load_eval_sets([str(SHARED_DATA / "benchmarks"), str(SHARED_DATA / "decontam/gsm8k/test.jsonl")])
    assert len(sets["gsm8k"]) == 1319 and len(sets["decontam/gsm8k"]) == 1319
    assert len(sets["math500"]) == 500 and len(sets["olympiadbench"]) == 675
    assert {r["lang"] for r in sets["cmath"]} == {"zh"}
    assert sets["olympiadbench"][1]["gold"] == r"\frac{1}{2 n+2}"
    assert sets["mmlu_stem"][0]["gold"] == "C"
    with pytest.raises(FileNotFoundError, match="not a file"):
        load_eval_sets([str(SHARED_DATA / "nope")])
