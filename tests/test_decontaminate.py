"""Decontamination: normalisation, LCS, the n-gram + LCS rule, files in / files out, real checks."""
from __future__ import annotations

import json
import pickle
import random
from collections import defaultdict

import pandas as pd
import pytest

from conftest import SHARED_DATA
from tasks.config import DecontaminateConfig
from tasks.decontaminate import (NgramIndex, decontaminate_files, decontaminate_rows, find_contamination,
                                 lcs_length, lcs_ratio, normalize)
from tasks.sources import read_problems

needs_data = pytest.mark.skipif(not (SHARED_DATA / "benchmarks").is_dir(), reason="../shared/data missing")
CFG = DecontaminateConfig(workers=1)

EVAL = {
    "e1": "A store sells 1400 apples on Monday and twice as many on Tuesday. Each apple costs $5. "
          "How much money does the store make over the two days in total?",
    "e2": "What is the remainder when $$1 -2 + 3 - 4 + 5-6+7-8+ 9 - 10+11$$is  divided by 8?",
    "e3": "小明有15个苹果，他给了小红6个苹果，又从妈妈那里得到了8个苹果，请问小明现在一共有多少个苹果？",
    "short": "Compute $\\dbinom{8}{4}$.",
}


def index_of(texts: dict[str, str], n: int = 13) -> NgramIndex:
    return NgramIndex.build({"bench": [{"id": k, "question": v} for k, v in texts.items()]}, n)


def flagged(text: str, index: NgramIndex, cfg=CFG) -> list[str]:
    return [p["eval_id"] for p in find_contamination([{"id": "t", "question": text}], index, cfg)]


@pytest.mark.parametrize("raw, norm", [
    ("Hello,   World!", "hello world"),
    (r"$\left( \dfrac{1}{2} \right)$", "frac 1 2"),
    (r"\tfrac{a}{b}\,\!\;\quad x", "frac a b x"),
    (r"costs \$1,400 or 12{,}000 or 3\,500, not 1,2", "costs 1400 or 12000 or 3500 not 1 2"),
    (r"3.5 \text{ cm}, \mathrm{kg}", "3.5 cm kg"),
    ("FULLWIDTH ＡＢＣ１２", "fullwidth abc 12"),
    ("小明有15个", "小 明 有 15 个"),
    ("Janet’s ducks -- 16 eggs/day", "janet s ducks 16 eggs day"),
    ("", ""),
])
def test_normalize(raw, norm):
    assert normalize(raw) == norm


def brute_lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_lcs_matches_brute_force():
    rng = random.Random(0)
    for _ in range(800):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 25))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 80))]
        assert lcs_length(a, b) == brute_lcs(a, b), (a, b)
        if a and b:
            assert lcs_ratio(a, b) == brute_lcs(a, b) / min(len(a), len(b))
    assert lcs_ratio([], ["x"]) == 0.0


@pytest.mark.parametrize("eval_id, old, new", [
    ("e2", "divided by 8", "divided by 9"),
    ("e1", "$5", "$2"),
    ("e1", "1400", "1375"),
    ("e1", "1400", "1,375"),
    ("e3", "15", "16"),
])
def test_one_number_changed_is_caught(eval_id, old, new):
    index = index_of(EVAL)
    changed = EVAL[eval_id].replace(old, new)
    assert changed != EVAL[eval_id] and flagged(changed, index) == [eval_id]


def test_unrelated_and_boilerplate_not_flagged():
    index = index_of(EVAL)
    assert flagged("A train travels 270 miles in 3 hours. How long does it take to travel 180 miles?", index) == []
    # the same 13-word frame around an unrelated question: a candidate, but a low LCS ratio
    frame = "How much money does the store make over the two days in total"
    unrelated = ("Lena knits scarves for a winter fair held in the town hall every December; she uses "
                 "three balls of wool per scarf and has forty balls. " + frame + "?")
    assert flagged(unrelated, index) == []
    assert flagged(unrelated, index, DecontaminateConfig(workers=1, mode="any-ngram")) == ["e1"]


def test_short_texts_are_one_gram_and_a_skeleton():
    index = index_of(EVAL)
    assert flagged("Compute $\\binom{8}{4}$.", index) == ["short"]  # identical after normalisation
    assert flagged("Compute $\\dbinom{9}{4}$.", index) == ["short"]  # same skeleton, ratio 3/4
    assert flagged("Compute $\\dbinom{9}{5}$.", index) == []  # ratio 2/4
    assert flagged("Compute $\\dbinom{8}{4}$ twice.", index) == []  # not a gram, not the skeleton
    # documented rule: a short eval text inside a longer training text is not a candidate
    assert flagged("First compute $\\dbinom{8}{4}$, then add 2 to the result and print it.", index) == []


def test_one_number_changed_in_the_middle_of_a_short_problem():
    """24 tokens: the change at token 11 touches every 13-gram; the number-masked skeleton matches."""
    question = "A farmer has 12 cows and 15 sheep and he buys 7 more cows at the market. How many animals does he have now?"
    changed = question.replace("7 more", "9 more")
    index = index_of({"mid": question})
    tokens = normalize(question).split()
    assert len(tokens) == 24 and tokens[11] == "7"
    assert flagged(changed, index) == ["mid"]
    pairs = find_contamination([{"question": changed}], index, CFG)
    assert pairs[0]["ngram"].startswith("a farmer has # cows and # sheep") and pairs[0]["lcs_ratio"] == round(23 / 24, 4)


def test_long_solution_restating_the_question_is_caught():
    index = index_of(EVAL)
    solution = ("Let us restate the problem. " + EVAL["e1"] + " On Tuesday the store sells 2 * 1400 = 2800 "
                "apples, so it sells 4200 apples in total, and at $5 each it makes 4200 * 5 = 21000 dollars. "
                "We double check every step of the arithmetic once more before writing the final answer. " * 3)
    assert flagged(solution, index) == ["e1"]


def test_index_lookup_and_pickle_rebuild():
    index = index_of(EVAL)
    gram = "A store sells 1,400 apples on Monday and twice as many on Tuesday."
    assert index.lookup(gram) == [("bench", "e1")]
    assert index.lookup("nothing like this text at all in any of the eval items here") == []
    clone = pickle.loads(pickle.dumps(index))
    assert clone.items == index.items and clone.grams == index.grams and len(clone) == 4


def test_decontaminate_rows_problems_and_solutions():
    index = index_of(EVAL)
    rows = [{"id": "a", "question": EVAL["e2"].replace("8?", "9?")},
            {"id": "b", "question": "Unrelated: what is 2 + 2?", "solution": "Restated: " + EVAL["e1"]},
            {"question": "No id here, and nothing to match against at all."}]
    kept, pairs = decontaminate_rows(rows, index, CFG)
    assert [r.get("id") for r in kept] == ["b", None] and [p["item_id"] for p in pairs] == ["a"]
    kept, pairs = decontaminate_rows(rows, index, CFG, text_fields=("question", "solution"))
    assert [r.get("id") for r in kept] == [None] and [(p["item_id"], p["eval_id"]) for p in pairs] == [("a", "e2"), ("b", "e1")]


@pytest.mark.parametrize("workers", [1, 2])
def test_decontaminate_files(tmp_path, workers):
    evals = tmp_path / "bench" / "test.jsonl"
    evals.parent.mkdir()
    evals.write_text("".join(json.dumps({"idx": k, "question": v}, ensure_ascii=False) + "\n" for k, v in EVAL.items()))
    lines = [json.dumps({"id": "x1", "question": EVAL["e1"].replace("$5", "$2"), "extra": [1]}),
             json.dumps({"question": "Clean question number one about nothing in particular."}),
             "{broken",
             json.dumps({"problem": "  "}),
             json.dumps({"problem": "Clean question two, with a \u00e9 accent.", "answer": "3"}, ensure_ascii=False)]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(lines) + "\n")
    more = tmp_path / "more.parquet"
    pd.DataFrame({"id": ["p1", "p2"], "question": [EVAL["e3"].replace("8", "9"), "Another clean one."]}).to_parquet(more)

    out = tmp_path / "out"
    report = decontaminate_files([str(train), str(more)], [str(evals.parent)], out, DecontaminateConfig(workers=workers))
    assert (report["items"], report["kept"], report["contaminated"], report["bad"]) == (5, 3, 2, 2)
    assert report["per_eval_set"]["bench"] == {"eval_items": 4, "flagged_items": 2, "eval_items_matched": 2}
    assert [(b["line"], b["field"]) for b in report["bad_rows"]] == [(3, "-"), (4, "question")]
    kept = (out / "kept.jsonl").read_text().splitlines()
    assert kept == [lines[1], lines[4], json.dumps({"id": "p2", "question": "Another clean one."})]
    pairs = pd.read_parquet(out / "contaminated.parquet")
    assert list(pairs.columns) == ["item_id", "source_file", "eval_set", "eval_id", "ngram", "lcs_ratio"]
    assert pairs[["item_id", "eval_id"]].values.tolist() == [["x1", "e1"], ["p1", "e3"]]
    assert pairs.source_file.tolist() == [str(train), str(more)]
    assert pairs.ngram[0] == "a store sells 1400 apples on monday and twice as many on tuesday"
    assert (pairs.lcs_ratio > 0.9).all()
    assert json.loads((out / "report.json").read_text()) == report
    assert sorted(p.name for p in out.iterdir()) == ["contaminated.parquet", "kept.jsonl", "report.json"]
    with pytest.raises(ValueError, match=r"train\.jsonl:3: field '-': invalid JSON"):
        decontaminate_files([str(train)], [str(evals)], tmp_path / "out2", CFG, on_bad="error")


@needs_data
@pytest.mark.parametrize("bench, needle, old, new", [
    ("gsm8k", "Janet\u2019s ducks lay 16 eggs", "$2", "$5"),
    ("math500", "$1 + 2 + 3 + 4 + \\dots + 9 + 10$", "divided by 9", "divided by 8"),
    ("math500", "remainder of 2004 divided by 12", "12", "11"),  # 8 tokens: the skeleton
    ("gsm8k", "Boris owns a chocolate factory", "8,000", "7,500"),
])
def test_real_eval_rows_with_one_number_changed(bench, needle, old, new):
    rows, _ = read_problems(SHARED_DATA / "benchmarks" / bench / "test.jsonl")
    row = next(r for r in rows if needle in r["question"])
    index = NgramIndex.build({bench: rows})
    changed = row["question"].replace(old, new, 1)
    assert changed != row["question"]
    pairs = find_contamination([{"id": "t", "question": changed}], index, CFG)
    assert [(p["eval_set"], p["eval_id"]) for p in pairs] == [(bench, row["id"])]


@needs_data
def test_math_test_vs_math500():
    """The 500 MATH-500 problems inside the 5,000 MATH test problems are all flagged, each
    matched to its own unique_id (the MATH row with the identical problem text)."""
    math, _ = read_problems(SHARED_DATA / "decontam/math/test.jsonl")
    m500, _ = read_problems(SHARED_DATA / "benchmarks/math500/test.jsonl")
    pairs = find_contamination(math, NgramIndex.build({"math500": m500}), CFG)
    line_of = {r["question"]: r["id"] for r in math}
    truth = {r["id"]: line_of[r["question"]] for r in m500}  # unique_id -> MATH line, by identical text
    matched = defaultdict(set)
    for p in pairs:
        matched[p["eval_id"]].add(p["item_id"])
    assert len(truth) == 500 and all(truth[uid] in matched[uid] for uid in truth)
    others = {p["item_id"] for p in pairs} - set(truth.values())
    print(f"\nMATH test vs MATH-500: 500/500 matched; {len(others)} of the other 4,500 flagged")
    assert len(others) < 200


def test_empty_file_and_prebuilt_index(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.json").write_text("{}")  # stale: replaced, never trusted
    report = decontaminate_files([str(tmp_path / "empty.jsonl")], index_of(EVAL), tmp_path / "out", CFG)
    assert report["items"] == report["pairs"] == 0 and report["files"] == {
        str(tmp_path / "empty.jsonl"): {"items": 0, "kept": 0, "contaminated": 0, "bad": 0}}
    assert (tmp_path / "out" / "kept.jsonl").read_text() == ""
    assert len(pd.read_parquet(tmp_path / "out" / "contaminated.parquet")) == 0


# A flow's process has Python-level SIGTERM handlers (Prefect's raises TerminationSignal); forked
# scan workers inherit them. The script records every worker that ever runs the inherited handler.
_SCAN_UNDER_A_FLOW = """
import os, signal, sys
from pathlib import Path
from tasks.decontaminate import NgramIndex, _scan

parent, marks = os.getpid(), Path(sys.argv[1])

def flow_handler(signum, frame):     # as Prefect's flow engine installs while a flow runs
    if os.getpid() != parent:
        (marks / str(os.getpid())).touch()
    raise SystemExit(1)

signal.signal(signal.SIGTERM, flow_handler)
index = NgramIndex.build({"e": [{"id": 1, "question": " ".join(f"w{i}" for i in range(20))}]})
rule = (0.6, "ngram+lcs", ("question",))
chunks = [[(0, {"question": "x y z"})], [(1, {"question": "a b c"})]]
for _ in range(20):
    assert [len(r) for _, r in _scan(iter(chunks), index, rule, workers=2)] == [1, 1]
    stopped = _scan(iter(chunks * 4), index, rule, workers=2)   # a reader that stops early
    next(stopped)
    stopped.close()
print("scanned")
"""


def test_parallel_scan_ends_its_workers_without_their_inherited_signal_handlers(tmp_path):
    """A finished scan lets its workers exit on their own, and one stopped early kills them with
    the default SIGTERM: neither path runs a handler inherited from the flow. (Ending the pool by
    SIGTERM alone, a worker still starting could drop the signal and the stage waited forever.)"""
    import subprocess
    import sys
    from pathlib import Path

    marks = tmp_path / "marks"
    marks.mkdir()
    out = subprocess.run([sys.executable, "-c", _SCAN_UNDER_A_FLOW, str(marks)], capture_output=True, text=True,
                         timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "scanned"
    assert sorted(p.name for p in marks.iterdir()) == []
