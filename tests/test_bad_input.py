"""Bad input gets one clear line naming the file, row and field (or the flag), never a traceback:
empty and non-UTF-8 problem/benchmark files, a missing or damaged model folder, flags out of
range; and `selfimprove eval` of a checkpoint this tool made (no chat template, a short context).

    .venv/bin/python -m pytest tests/test_bad_input.py -q              # fast: ~1 min
    .venv/bin/python -m pytest tests/test_bad_input.py -q -m slow      # + eval on GSM8K with vLLM

The CLI cases run the real command in a subprocess and fail before Prefect or vLLM start.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED_DATA
from tasks import world

GSM8K = SHARED_DATA / "benchmarks" / "gsm8k" / "test.jsonl"
needs_data = pytest.mark.skipif(not GSM8K.is_file(), reason="../shared/data missing")


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "300"}
    return subprocess.run([sys.executable, "-m", "flows.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def one_line(result: subprocess.CompletedProcess) -> str:
    """The command failed with exactly one line on stderr and nothing else; that line."""
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and result.stdout == "", result.stderr[-2000:]
    return lines[0]


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A checkpoint as the tool makes it (tasks.bootstrap): no chat template, a 192-token context."""
    from tasks.bootstrap import build_tiny_model, train_tokenizer
    from tasks.config import Config

    out = tmp_path_factory.mktemp("tiny")
    rows = world.bootstrap_corpus(300, seed=0, ops=["add"], max_digits=2, zh_fraction=0.5, sloppy_fraction=0.5)
    train_tokenizer([r["question"] for r in rows] + [r["solution"] for r in rows], 400, out / "tok")
    build_tiny_model(Config().bootstrap.tiny, 0, out / "tok", out / "model")
    return out / "model"


# ---------------------------------------------------------------------------------------------
# Problem and benchmark files

def test_empty_problems_file_is_one_line_naming_it(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    cfg = write_yaml(tmp_path / "c.yaml", f"problems: {{source: files, files: [{{path: {empty}}}]}}\n")
    assert one_line(cli("run", cfg, "--home", tmp_path / "runs")) == \
        f"error: problems.files: {empty}: no rows (the file is empty)"
    assert not (tmp_path / "runs").exists()


def test_empty_benchmark_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text("")
    cfg = write_yaml(tmp_path / "c.yaml", f"evaluate: {{benchmarks: [gsm8k], data_dir: {tmp_path}}}\n")
    assert one_line(cli("run", cfg, "--home", tmp_path / "runs")) == \
        f"error: evaluate.benchmarks: {tmp_path}/gsm8k/test.jsonl: no rows (the file is empty)"


def test_file_whose_rows_are_all_bad_names_the_first(tmp_path):
    from tasks.sources import read_problems

    path = tmp_path / "p.jsonl"
    path.write_text('{"answer": 1}\n[1]\n')
    with pytest.raises(ValueError) as e:
        read_problems(path)
    assert str(e.value) == f"{path}: none of its 2 rows can be used; first: line 1, field 'question': " \
                           "missing (looked for question / problem)"


def latin1_file(tmp_path) -> Path:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"question": "What is 2+2?", "answer": "4"}\n'
                     b'{"question": "caf\xe9?", "answer": "1"}\n'
                     b'{"question": "What is 3+3?", "answer": "6"}\n')
    return path


def test_a_non_utf8_byte_spoils_its_line_only(tmp_path):
    from tasks.sources import read_problems

    path = latin1_file(tmp_path)
    rows, bad = read_problems(path)
    assert [r["question"] for r in rows] == ["What is 2+2?", "What is 3+3?"]
    assert bad == [{"file": str(path), "line": 2, "field": "-", "reason": "not UTF-8: byte 0xe9 at byte 18 of the line"}]
    with pytest.raises(ValueError, match=r"latin\.jsonl:2: field '-': not UTF-8: byte 0xe9"):
        read_problems(path, on_bad="error")


def test_a_byte_order_mark_is_not_a_bad_row(tmp_path):
    from tasks.sources import read_problems

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"question": "q1"}\n{"question": "q2"}\n')
    rows, bad = read_problems(path)
    assert [r["question"] for r in rows] == ["q1", "q2"] and bad == []


def test_non_utf8_with_on_bad_error_is_one_line(tmp_path):
    path = latin1_file(tmp_path)
    cfg = write_yaml(tmp_path / "c.yaml", f"problems: {{source: files, on_bad: error, files: [{{path: {path}}}]}}\n")
    assert one_line(cli("run", cfg, "--home", tmp_path / "runs")) == \
        f"error: problems.files: {path}:2: field '-': not UTF-8: byte 0xe9 at byte 18 of the line"


def test_skipped_rows_are_counted_on_the_console_with_where_they_are_listed(tmp_path, capsys):
    from flows.cli import _check_inputs
    from tasks.config import Config

    path = latin1_file(tmp_path)
    cfg = Config.model_validate({"problems": {"source": "files", "files": [{"path": str(path)}]}})
    _check_inputs(cfg, tmp_path / "run")
    assert capsys.readouterr().err.splitlines() == [
        f"problems.files: {path}: 1 bad rows will be skipped (first: line 2, field '-': not UTF-8: byte 0xe9 "
        f"at byte 18 of the line); each round lists them in {tmp_path}/run/round-XX/01-problems/bad_rows.parquet"]
    (tmp_path / "gsm8k").mkdir()
    path.rename(tmp_path / "gsm8k" / "test.jsonl")
    _check_inputs(Config.model_validate({"evaluate": {"benchmarks": ["gsm8k"], "data_dir": str(tmp_path)}}), tmp_path)
    assert capsys.readouterr().err.splitlines() == [
        f"evaluate.benchmarks: 1 bad rows will be skipped (first: {tmp_path}/gsm8k/test.jsonl:2, field '-': "
        "not UTF-8: byte 0xe9 at byte 18 of the line)"]


# ---------------------------------------------------------------------------------------------
# Model folders

def test_missing_model_path_is_one_line_before_anything_starts(tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", f"bootstrap: {{model_path: {tmp_path}/nowhere}}\n")
    assert one_line(cli("run", cfg, "--home", tmp_path / "runs")) == \
        f"error: bootstrap.model_path: {tmp_path}/nowhere: no such model folder"
    assert not (tmp_path / "runs").exists()


def damaged_copy(tiny_model: Path, dest: Path, damage: str) -> Path:
    import shutil

    shutil.copytree(tiny_model, dest)
    weights, config = dest / "model.safetensors", dest / "config.json"
    if damage == "random bytes":
        weights.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:50_000])
    elif damage == "huge config":
        c = json.loads(config.read_text())
        config.write_text(json.dumps({**c, "hidden_size": 1_000_000, "intermediate_size": 4_000_000}))
    elif damage == "no tokenizer":
        (dest / "tokenizer.json").unlink()
    elif damage == "unknown architecture":
        config.write_text(json.dumps({**json.loads(config.read_text()), "model_type": "nosuch", "architectures": ["NoSuch"]}))
    return dest


@pytest.mark.parametrize("damage, message", [
    ("random bytes", r"/model\.safetensors: not a safetensors file \(header length \d+, file 4096 bytes\)$"),
    ("truncated", r"/model\.safetensors: tensor '[\w.]+' \(F32 \[\d+(, \d+)*\]\) does not fit the file \(bytes \d+-\d+ "
                  r"of \d+\); the file is truncated or damaged$"),
    ("huge config", r": weights do not match config\.json: model\.embed_tokens\.weight is \[\d+, 192\] in the "
                    r"weights, config\.json implies \[\d+, 1000000\] \(\d+ tensors differ\)$"),
    ("no tokenizer", r": no tokenizer \(tokenizer\.json, tokenizer\.model or vocab\.json\)$"),
    ("unknown architecture", r"/config\.json: transformers cannot build this model: .*nosuch"),
])
def test_damaged_model_folder_is_named_with_what_is_wrong(tiny_model, tmp_path, damage, message):
    from tasks.models import check_model

    assert check_model(tiny_model) == tiny_model
    bad = damaged_copy(tiny_model, tmp_path / "m", damage)
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        check_model(bad)
    assert str(e.value).startswith(str(bad)) and len(str(e.value).splitlines()) == 1
    assert e.match(message)


def test_run_or_eval_of_a_damaged_model_is_one_line(tiny_model, tmp_path):
    bad = damaged_copy(tiny_model, tmp_path / "m", "huge config")
    line = one_line(cli("eval", "--model", bad, "--benchmarks", "gsm8k:5", "--out", tmp_path / "out"))
    assert line.startswith(f"error: {bad}: weights do not match config.json: model.embed_tokens.weight")
    assert not (tmp_path / "out").exists()
    cfg = write_yaml(tmp_path / "c.yaml", f"bootstrap: {{model_path: {bad}}}\n")
    line = one_line(cli("run", cfg, "--home", tmp_path / "runs"))
    assert line.startswith(f"error: bootstrap.model_path: {bad}: weights do not match config.json: ")
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------
# Flags are blamed as flags

@pytest.mark.parametrize("args, line", [
    (["run", "configs/smoke.yaml", "--rounds", "-1"], "error: --rounds -1: must be 0 or more (improvement rounds after round 0)"),
    (["eval", "--model", "m", "--n", "-3"], "error: --n -3: must be 0 or more (samples per problem; 0 = greedy only)"),
    (["eval", "--model", "m", "--max-tokens", "0"], "error: --max-tokens 0: must be 1 or more (generation budget per response)"),
    (["eval", "--model", "m", "--limit", "0"], "error: --limit 0: must be 1 or more (first N problems of each benchmark)"),
])
def test_a_flag_out_of_range_is_named(args, line):
    assert one_line(cli(*args)) == line


# ---------------------------------------------------------------------------------------------
# Prompts that fit the model

def test_a_model_without_chat_template_gets_the_plain_format(tiny_model, tmp_path):
    import shutil

    from tasks.config import PromptConfig
    from tasks.prompts import build_prompts, has_chat_template, prompt_config_for

    chat = PromptConfig(chat_template=True)
    cfg, words = prompt_config_for(tiny_model, chat)
    assert not has_chat_template(tiny_model)
    assert (cfg.chat_template, words) == (False, "plain template (the model has no chat template)")
    assert build_prompts(["What is 2+2?"], str(tiny_model), cfg, "tir") == ["What is 2+2? Use Python.\n"]
    with_template = shutil.copytree(tiny_model, tmp_path / "chat")
    (with_template / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    assert prompt_config_for(with_template, chat) == (chat, "chat template")
    assert prompt_config_for(tiny_model, PromptConfig()) == (PromptConfig(), "plain template")


def test_prompt_budget_is_the_context_minus_max_tokens(tiny_model):
    from tasks.prompts import model_context, prompt_budget, prompts_that_fit

    assert model_context(tiny_model) == 192 and model_context(tiny_model, 2048) == 192
    assert model_context(tiny_model, 100) == 100
    assert prompt_budget(tiny_model, 48) == 144
    with pytest.raises(ValueError, match=r"max_tokens 192 leaves no room for a prompt in the model's context of "
                                         r"192 tokens; use a max_tokens below 192"):
        prompt_budget(tiny_model, 192)
    short, long = "What is 2+2?\n", "What is 2+2? " * 40 + "\n"
    assert prompts_that_fit([short, long, short], tiny_model, 144) == [True, False, True]
    assert prompts_that_fit([long], tiny_model, None) == [True]


@pytest.mark.slow
@needs_data
def test_eval_of_a_tiny_checkpoint_on_gsm8k(tiny_model, tmp_path):
    """The default eval config asks for the chat template; the tiny model has none and a 192-token
    context: it is prompted in the plain format, and the problems too long for it are skipped and
    counted (exactly those whose plain prompt exceeds 192 - 48 tokens)."""
    from transformers import AutoTokenizer

    out = tmp_path / "out"
    result = cli("eval", "--model", tiny_model, "--benchmarks", "gsm8k:30", "--n", "0", "--max-tokens", "48",
                 "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    questions = [json.loads(line)["question"] for line in GSM8K.read_text().splitlines()[:30]]
    too_long = sum(len(tok(q.strip() + "\n")["input_ids"]) > 144 for q in questions)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prompt_format"] == "plain template (the model has no chat template)"
    assert metrics.get("prompts_too_long") == ({"max_prompt_tokens": 144, "gsm8k": too_long} if too_long else None)
    assert metrics["n_test"] == 30 - too_long
    report = (out / "report.md").read_text()
    assert "- prompts: plain template (the model has no chat template)" in report
    assert (f"- skipped {too_long} problems whose prompt is longer than 144 tokens" in report) == (too_long > 0)
