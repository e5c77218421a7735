"""The tiny world: gold answers are exact, the sloppy tutor is wrong exactly on carry problems."""
from __future__ import annotations

import re

import pytest

from tasks import world


def boxed(s: str) -> str:
    return re.search(r"\\boxed\{(\d+)\}", s).group(1)


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_correct_solutions_reach_the_gold_answer(op):
    for p in world.make_problems(2000, seed=3, ops=[op], max_digits=3, zh_fraction=0.5):
        assert boxed(world.solve_cot(p)) == p["gold"] == str(world.exact(op, p["a"], p["b"]))


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_sloppy_tutor_is_wrong_exactly_on_carry_problems(op):
    problems = world.make_problems(2000, seed=4, ops=[op], max_digits=3, zh_fraction=0.0)
    for p in problems:
        assert (boxed(world.solve_cot(p, sloppy=True)) != p["gold"]) == p["carry"]
    assert 0.2 < sum(p["carry"] for p in problems) / len(problems) < 0.9


def test_known_solutions():
    assert world.solve_cot({"op": "add", "a": 347, "b": 285}) == "347+285:7+5=12;4+8+1=13;3+2+1=6;\\boxed{632}"
    assert world.solve_cot({"op": "sub", "a": 532, "b": 285}) == "532-285:12-5=7;13-1-8=4;5-1-2=2;\\boxed{247}"
    assert world.solve_cot({"op": "mul", "a": 347, "b": 6}) == "347*6:7*6=42;4*6+4=28;3*6+2=20;\\boxed{2082}"


def test_deterministic_bilingual_and_exclusion():
    a = world.make_problems(300, seed=5, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5)
    b = world.make_problems(300, seed=5, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5)
    assert a == b
    assert {p["lang"] for p in a} == {"en", "zh"}
    keys = {(p["op"], p["a"], p["b"]) for p in a[:100]}
    c = world.make_problems(300, seed=6, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5, exclude=keys)
    assert not keys & {(p["op"], p["a"], p["b"]) for p in c}


def test_bootstrap_corpus_noise_rate():
    rows = world.bootstrap_corpus(3000, seed=0, ops=["add", "sub", "mul"], max_digits=3,
                                  zh_fraction=0.5, sloppy_fraction=0.6)
    carry = [r for r in rows if r["carry"]]
    wrong = [r for r in rows if boxed(r["solution"]) != r["gold"]]
    assert all(r["sloppy"] for r in wrong) and all(r["carry"] for r in wrong)
    assert 0.5 < len(wrong) / len(carry) < 0.7
