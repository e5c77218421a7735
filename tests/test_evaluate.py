"""The evaluate stage's benchmark loading: one loader for the Qwen2.5-Math evaluation layout, limits
per benchmark, clear errors for a missing benchmark or a bad limit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.config import Config, ConfigError, load_config
from tasks.evaluate import load_test_set


def load(cfg):
    return load_test_set(cfg.evaluate, cfg.world)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data missing")


def evaluate_config(**evaluate) -> Config:
    return Config.model_validate({"evaluate": {"data_dir": str(SHARED_DATA), **evaluate}})


@needs_data
def test_each_benchmark_takes_its_own_limit_or_the_common_one():
    test, bad = load(evaluate_config(benchmarks=["gsm8k:7", "math500"], limit=3))
    assert bad == []
    assert test.source.value_counts().to_dict() == {"gsm8k": 7, "math500": 3}
    assert test.id.iloc[0] == "gsm8k/0" and test.gold.notna().all()
    first = json.loads((SHARED_DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    assert test.question.iloc[0] == first["question"]
    assert test.gold.iloc[0] == first["answer"].split("####")[-1].strip()


@needs_data
def test_no_limit_reads_the_whole_benchmark():
    test, _ = load(evaluate_config(benchmarks=["amc23"]))
    assert len(test) == 40


def test_missing_benchmark_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"benchmark nosuch: .*nosuch/test.jsonl not found"):
        load(Config.model_validate({"evaluate": {"data_dir": str(tmp_path), "benchmarks": ["nosuch"]}}))


@pytest.mark.parametrize("entry", ["gsm8k:0", "gsm8k:many", ":5"])
def test_bad_benchmark_limit_is_a_config_error(tmp_path, entry):
    path = tmp_path / "bad.yaml"
    path.write_text(f"evaluate: {{benchmarks: ['{entry}']}}\n")
    with pytest.raises(ConfigError, match="name:N with N > 0"):
        load_config(path)
