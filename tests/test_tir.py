"""TIR: the tiny world's TIR writer, the loop's pure helpers, the loop with a scripted model and a
real sandbox, and (slow) the loop end to end with vLLM on a tiny model trained on TIR solutions.

    .venv/bin/python -m pytest tests/test_tir.py -q              # fast: no vLLM
    .venv/bin/python -m pytest tests/test_tir.py -q -m slow      # 6-12 min on 2 busy CPUs: train + vLLM
"""
from __future__ import annotations

import re
import sys
import time
import types
from dataclasses import dataclass

import pytest

from tasks import tir, world
from tasks.answer_extract import extract_answer
from tasks.sandbox import ExecResult, SandboxPool


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(max_workers=2) as p:
        yield p


def boxed(s: str) -> str:
    return re.search(r"\\boxed\{(-?\d+)\}", s).group(1)


# ---------------------------------------------------------------- the tiny world's TIR solutions

def test_known_tir_solutions():
    assert world.solve_tir({"op": "mul", "a": 347, "b": 6}) == \
        "```python\nprint(347 * 6)\n```\n```output\n2082\n```\n\\boxed{2082}"
    assert world.solve_tir({"op": "mul", "a": 347, "b": 6}, sloppy=True) == \
        "```python\nprint(37 * 6)\n```\n```output\n222\n```\n\\boxed{222}"
    assert world.solve_tir({"op": "add", "a": 7, "b": 15}, sloppy=True).startswith("```python\nprint(7 + 1)\n")
    assert world.solve_tir({"op": "add", "a": 7, "b": 5}, sloppy=True).startswith("```python\nprint(7 - 5)\n")
    assert world.tir_question("What is 3 plus 4?") == "What is 3 plus 4? Use Python."


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_tir_code_prints_the_gold_answer_in_the_sandbox(op, pool):
    """The writer's code, each run for real, prints the gold answer, and its output block is that
    print; the sloppy writer's code (run as one program, a line per problem) prints what its own
    output block claims, which is never the gold."""
    problems = world.make_problems(200, seed=11, ops=[op], max_digits=3, zh_fraction=0.5)
    for sloppy in (False, True):
        solutions = [world.solve_tir(p, sloppy=sloppy) for p in problems]
        pieces = [tir.split_response(s) for s in solutions]
        assert all([k for k, _ in ps] == ["python", "output", "text"] for ps in pieces)
        codes = [ps[0][1] for ps in pieces]
        if sloppy:
            printed = pool.run("\n".join(codes), timeout_s=10).stdout.splitlines()
        else:
            results = pool.map(codes, timeout_s=10)
            assert all(r.error is None for r in results)
            printed = [r.stdout.strip() for r in results]
        for p, ps, s, out in zip(problems, pieces, solutions, printed, strict=True):
            assert out == ps[1][1] == boxed(s)
            assert (out == p["gold"]) != sloppy
            assert extract_answer(s) == boxed(s)


def test_tir_code_runs_through_run_code():
    from tasks.sandbox import run_code

    p = world.make_problems(1, seed=12, ops=["mul"], max_digits=3, zh_fraction=0.0)[0]
    code = tir.split_response(world.solve_tir(p))[0][1]
    assert run_code(code).stdout.strip() == p["gold"]


def test_bootstrap_corpus_tir_fraction():
    kw = dict(seed=0, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5, sloppy_fraction=0.6)
    cot = world.bootstrap_corpus(2000, **kw)
    assert cot == world.bootstrap_corpus(2000, **kw, tir_fraction=0.0)
    mixed = world.bootstrap_corpus(2000, **kw, tir_fraction=0.3)
    assert [r["sloppy"] for r in mixed] == [r["sloppy"] for r in cot]  # the same noise either way
    tir_rows = [r for r in mixed if r["mode"] == "tir"]
    assert 0.25 < len(tir_rows) / len(mixed) < 0.35
    for r, c in zip(mixed, cot):
        if r["mode"] == "cot":
            assert r == {**c, "mode": "cot"}
        else:
            assert r["question"] == c["question"]
            assert r["solution"] == world.solve_tir(c, sloppy=c["sloppy"])
            assert (boxed(r["solution"]) == r["gold"]) == (not r["sloppy"])
    only = world.bootstrap_corpus(500, **kw, tir_fraction=1.0)
    assert all(r["mode"] == "tir" and r["solution"].startswith("```python") for r in only)


# ---------------------------------------------------------------- the loop's pure helpers

def test_split_response():
    text = "Let me compute.\n```python\nx = 6\nprint(x * 7)\n```\n```output\n42\n```\nSo \\boxed{42}."
    assert tir.split_response(text) == [("text", "Let me compute.\n"), ("python", "x = 6\nprint(x * 7)"),
                                        ("output", "42"), ("text", "\nSo \\boxed{42}.")]
    assert tir.split_response("```python\nprint(1)") == [("text", "```python\nprint(1)")]  # unclosed
    assert tir.split_response("") == []
    assert tir.split_response("```python\n```") == [("python", "")]


@pytest.mark.parametrize("segment, code", [
    ("```python\nprint(347 * 6)\n```\n", "print(347 * 6)"),            # stopped at ```output
    ("Use code.\n```python\nx = 2\nprint(x)\n```  \n\n", "x = 2\nprint(x)"),
    ("```python\nprint(1)\n```\n\\boxed{1}", None),                     # an answer: not a call
    ("\\boxed{3}\n```python\nprint(3)\n```", None),                      # Qwen: "boxed" means done
    ("```python\nprint(1)", None),                                       # cut off inside the code
    ("The answer is 5.", None),
    ("```\nprint(1)\n```", None),                                        # not a python block
    ("```python\nprint(1)\n```\n```output\n1\n```", None),               # ends in an output block
])
def test_pending_code(segment, code):
    assert tir.pending_code(segment) == code


def test_truncate_and_format_output():
    assert tir.truncate_middle("x" * 400) == "x" * 400
    cut = tir.truncate_middle("a" * 300 + "b" * 300)
    assert cut == "a" * 200 + "..." + "b" * 200
    assert tir.truncate_middle("abcdefghij", 4) == "ab...ij"
    assert tir.format_output(ExecResult(stdout="2082\n")) == "2082"
    assert tir.format_output(ExecResult(stdout="")) == "Done"
    assert tir.format_output(ExecResult(stdout="partial\n", error="ZeroDivisionError: division by zero")) == \
        "ZeroDivisionError: division by zero"
    assert len(tir.format_output(ExecResult(stdout="9" * 5000))) == 403


def test_with_output_matches_the_world_format():
    """The loop builds exactly the text the tiny world trains on (Qwen2.5-Math's layout)."""
    p = {"op": "mul", "a": 347, "b": 6}
    segment = "```python\nprint(347 * 6)\n```\n"       # what vLLM returns when it stops at ```output
    assert tir.with_output(segment, "2082") + "\\boxed{2082}" == world.solve_tir(p)
    assert extract_answer(tir.with_output(segment, "2082")) == "2082"   # the output's last line


def test_trajectory_seed_is_stable_and_distinct():
    seeds = {tir.trajectory_seed(0, i, s) for i in range(100) for s in range(4)}
    assert len(seeds) == 400 and tir.trajectory_seed(3, 5, 1) == tir.trajectory_seed(3, 5, 1)
    assert all(0 <= s < 2**31 for s in seeds)


# ---------------------------------------------------------------- the loop, with a scripted model

@dataclass
class _Params:  # stands in for vllm.SamplingParams
    n: int
    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    stop: list


class _ScriptedLLM:
    """Answers from a script keyed by the prompt: one segment per step, 1 token per character."""

    def __init__(self, script: dict[str, list[str]], context: int = 10_000):
        self.script, self.calls = script, []
        self.model_config = types.SimpleNamespace(max_model_len=context)

    def get_tokenizer(self):
        return types.SimpleNamespace(encode=lambda text: list(text))

    def generate(self, prompts, params, use_tqdm=False):
        self.calls.append((list(prompts), list(params)))
        outs = []
        for text, p in zip(prompts, params):
            prompt = next(k for k in self.script if text.startswith(k))
            step = text.count("```output")
            seg = self.script[prompt][step]
            finish = "stop"
            if len(seg) > p.max_tokens:
                seg, finish = seg[:p.max_tokens], "length"
            completion = types.SimpleNamespace(text=seg, token_ids=list(seg), finish_reason=finish)
            outs.append(types.SimpleNamespace(outputs=[completion]))
        return outs


@pytest.fixture
def scripted(monkeypatch):
    def install(script, context=10_000):
        llm = _ScriptedLLM(script, context)
        monkeypatch.setattr("tasks.engine.get_engine", lambda model_dir, cfg: llm)
        monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=_Params))
        return llm
    return install


def test_dedupe_calls_runs_identical_sessions_once(scripted, pool):
    """n samples that write the same code share one execution (and so one output); without
    dedupe each runs on its own (a random draw then differs between them)."""
    code = "```python\nimport random\nprint(random.random())\n```\n"
    scripted({"A\n": [code, "\\boxed{1}"], "B\n": ["```python\nprint(2)\n```\n", "\\boxed{2}"]})

    class Counting:
        def __init__(self):
            self.executions = 0

        def map(self, sources, **kw):
            self.executions += len(sources)
            return pool.map(sources, **kw)

    kw = dict(n=4, temperature=1.0, top_p=1.0, max_tokens=1000, seed=0, engine_cfg=None, max_calls=2)
    shared = Counting()
    out = tir.generate_tir("m", ["A\n", "B\n"], pool=shared, dedupe_calls=True, **kw)
    assert shared.executions == 2
    assert len({r["response"] for r in out[0]}) == 1 and all(r["n_calls"] == 1 for r in out[0])
    assert all("```output\n2\n```" in r["response"] for r in out[1])
    apart = Counting()
    out = tir.generate_tir("m", ["A\n", "B\n"], pool=apart, dedupe_calls=False, **kw)
    assert apart.executions == 8
    assert len({r["response"] for r in out[0]}) == 4


def test_loop_runs_sessions_and_appends_outputs(scripted, pool):
    llm = scripted({
        "A\n": ["```python\nx = 6\n```\n", "```python\nprint(x * 7)\n```\n", "\\boxed{42}"],
        "B\n": ["```python\nprint(1 / 0)\n```\n", "It failed. \\boxed{0}"],
        "C\n": ["No code: \\boxed{5}"],
        "D\n": ["```python\nprint(1)\n```\n"] * 5,
    })
    out = tir.generate_tir("m", ["A\n", "B\n", "C\n", "D\n"], n=2, temperature=1.0, top_p=1.0,
                           max_tokens=1000, seed=3, engine_cfg=None, max_calls=2, pool=pool)
    a, b, c, d = (o[0] for o in out)
    assert all(o[0] == o[1] for o in out)
    assert a == {"response": "```python\nx = 6\n```\n```output\nDone\n```\n```python\nprint(x * 7)\n```\n"
                             "```output\n42\n```\n\\boxed{42}",
                 "n_tokens": len("```python\nx = 6\n```\n```python\nprint(x * 7)\n```\n\\boxed{42}"),
                 "finish_reason": "stop", "n_calls": 2, "exec_errors": 0}
    assert "```output\nZeroDivisionError: division by zero\n```\n" in b["response"]
    assert (b["n_calls"], b["exec_errors"], extract_answer(b["response"])) == (1, 1, "0")
    assert (c["response"], c["n_calls"], c["finish_reason"]) == ("No code: \\boxed{5}", 0, "stop")
    assert (d["n_calls"], d["finish_reason"], d["response"].count("```output")) == (2, "call_limit", 2)
    # one batched generate per step over the unfinished trajectories, seeds per trajectory and step
    assert [len(prompts) for prompts, _ in llm.calls] == [8, 6, 4]
    assert all(p.n == 1 and p.stop[0] == "```output" for _, ps in llm.calls for p in ps)
    seeds = [p.seed for p in llm.calls[0][1]]
    assert len(set(seeds)) == 8 and seeds[0] == tir.trajectory_seed(3, 0, 0)


def test_loop_token_budget_and_context(scripted, pool):
    seg = "```python\nprint(2)\n```\n"
    scripted({"P\n": [seg, "\\boxed{2}"]})
    kw = dict(n=1, temperature=0.0, top_p=1.0, seed=0, engine_cfg=None, pool=pool)
    # the budget ends exactly after the code: no tokens left to read the output, so it is not run
    [[r]] = tir.generate_tir("m", ["P\n"], max_tokens=len(seg), **kw)
    assert (r["finish_reason"], r["n_calls"], r["n_tokens"]) == ("length", 0, len(seg))
    # the second segment gets what is left of max_tokens
    [[r]] = tir.generate_tir("m", ["P\n"], max_tokens=len(seg) + 4, **kw)
    assert (r["finish_reason"], r["n_calls"], r["n_tokens"]) == ("length", 1, len(seg) + 4)
    assert r["response"].endswith("```output\n2\n```\n\\box")
    # the context (prompt + response + outputs) caps a segment too
    scripted({"P\n": [seg, "\\boxed{2}"]}, context=len("P\n" + tir.with_output(seg, "2")))
    [[r]] = tir.generate_tir("m", ["P\n"], max_tokens=1000, **kw)
    assert (r["finish_reason"], r["n_calls"]) == ("length", 1)
    with pytest.raises(ValueError, match="max_calls"):
        tir.generate_tir("m", ["P\n"], max_tokens=10, max_calls=-1, **kw)


# ---------------------------------------------------------------- end to end with vLLM (slow)

@pytest.mark.slow
def test_generate_tir_end_to_end_with_vllm(tmp_path):
    """A tiny model trained a few hundred steps on TIR-only solutions writes code that runs."""
    from tasks.bootstrap import build_tiny_model, train_tokenizer
    from tasks.config import BootstrapConfig, Config, EngineConfig, TinyModelConfig, TrainConfig
    from tasks.engine import shutdown
    from tasks.training import train

    # smaller than configs/tiny.yaml's model (~20% less CPU here): the format is all this test needs
    tiny = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=256)
    cfg = Config(bootstrap=BootstrapConfig(tiny=tiny))
    corpus = world.bootstrap_corpus(3000, seed=0, ops=["add", "sub", "mul"], max_digits=3,
                                    zh_fraction=0.5, sloppy_fraction=0.0, tir_fraction=1.0)
    prompts = [world.tir_question(r["question"]) + "\n" for r in corpus]  # the prompt asked at test time
    solutions = [r["solution"] for r in corpus]
    train_tokenizer(prompts + solutions, 640, tmp_path / "tok")
    build_tiny_model(cfg.bootstrap.tiny, cfg.run.seed, tmp_path / "tok", tmp_path / "init")
    stats = train(tmp_path / "init", prompts, solutions, tmp_path / "model",
                  TrainConfig(lr=3e-3, max_steps=200, batch_size=32, warmup_ratio=0.02), tiny.max_len)
    test = world.make_problems(32, seed=77, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5)
    started = time.monotonic()
    try:
        out = tir.generate_tir(tmp_path / "model", [world.tir_question(p["question"]) + "\n" for p in test],
                               n=2, temperature=0.7, top_p=1.0, max_tokens=64, seed=0,
                               engine_cfg=EngineConfig(), max_calls=3)
    finally:
        shutdown()
    wall_s = time.monotonic() - started
    flat = [(p, c) for p, cs in zip(test, out) for c in cs]
    ran = [c for _, c in flat if c["n_calls"] >= 1]
    assert len(ran) >= 0.8 * len(flat), (stats, flat[:4])
    assert all("```output\n" in c["response"] for c in ran)
    # the output blocks hold what the sandbox printed: the result of the model's own expression
    for c in ran:
        pieces = tir.split_response(c["response"])
        kinds = [k for k, _ in pieces]
        at = kinds.index("python")
        assert kinds[at + 1] == "output"
        code, output = pieces[at][1], pieces[at + 1][1]
        m = re.fullmatch(r"print\((\d+) ([-+*]) (\d+)\)", code)
        if m:
            x, op, y = int(m[1]), m[2], int(m[3])
            assert output == str({"+": x + y, "-": x - y, "*": x * y}[op])
    correct = sum(extract_answer(c["response"]) == p["gold"] for p, c in flat)
    print(f"\nTIR e2e: {stats}; generate_tir {wall_s:.1f} s (engine start included); "
          f"{len(ran)}/{len(flat)} ran code, {correct}/{len(flat)} correct")


# ---------------------------------------------------------------- TIR in prompts, sample and evaluate

def test_tir_prompt_is_the_one_the_tiny_world_trains_on():
    from tasks.config import PromptConfig
    from tasks.prompts import build_prompt, build_prompts

    q = "What is 3 plus 4?"
    assert build_prompt(q, None, PromptConfig(), "tir") == world.tir_question(q) + "\n"
    assert build_prompt(q, None, PromptConfig(), "cot") == q + "\n"
    assert build_prompts([q, q], "unused", PromptConfig(), ["cot", "tir"]) == [q + "\n", world.tir_question(q) + "\n"]
    with pytest.raises(ValueError, match="reasoning mode"):
        build_prompt(q, None, PromptConfig(), "pot")
    with pytest.raises(ValueError, match="2 questions but 1 modes"):
        build_prompts([q, q], "unused", PromptConfig(), ["cot"])


def test_problem_modes_share_and_stability():
    from tasks.generation import problem_modes

    ids = [f"p{i}" for i in range(2000)]
    modes = problem_modes(ids, 0.25, seed=0)
    assert 0.22 < modes.count("tir") / len(ids) < 0.28
    assert modes == problem_modes(ids, 0.25, seed=0)
    assert modes[:100] == problem_modes(ids[:100], 0.25, seed=0)   # a problem's mode is its own
    assert problem_modes(ids, 0.0, seed=0) == ["cot"] * len(ids)
    assert problem_modes(ids, 1.0, seed=0) == ["tir"] * len(ids)


def test_tir_sloppy_fraction_is_its_own_share_on_any_problem():
    kw = dict(seed=0, ops=["add", "sub", "mul"], max_digits=2, zh_fraction=0.5, sloppy_fraction=0.6)
    tied = world.bootstrap_corpus(4000, **kw, tir_fraction=0.5)
    own = world.bootstrap_corpus(4000, **kw, tir_fraction=0.5, tir_sloppy_fraction=0.1)
    assert [r["mode"] for r in tied] == [r["mode"] for r in own]
    assert [r for r in tied if r["mode"] == "cot"] == [r for r in own if r["mode"] == "cot"]
    tir_rows = [r for r in own if r["mode"] == "tir"]
    assert 0.07 < sum(r["sloppy"] for r in tir_rows) / len(tir_rows) < 0.13
    assert any(r["sloppy"] and not r["carry"] for r in tir_rows)     # not tied to carries
    assert all(r["solution"] == world.solve_tir(r, sloppy=r["sloppy"]) for r in tir_rows)
