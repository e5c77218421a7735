"""Every shipped config loads; bad configs fail with the file, the field and what is allowed."""
from __future__ import annotations

from pathlib import Path

import pytest

from tasks.config import ConfigError, load_config

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.run.rounds >= 0
    first = path.read_text().splitlines()[0]
    assert first.startswith("# selfimprove "), "each config starts with the command that runs it"


def test_unknown_field_names_field_and_allowed(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sample:\n  temprature: 0.7\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    msg = str(e.value)
    assert str(bad) in msg and "sample.temprature" in msg and "temperature" in msg


def test_wrong_type_and_range(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sample:\n  n: zero\nverify:\n  timeout_s: -1\n")
    with pytest.raises(ConfigError) as e:
        load_config(bad)
    assert "sample.n" in str(e.value) and "verify.timeout_s" in str(e.value)


def test_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_apply():
    cfg = load_config(CONFIGS[0], {"run.rounds": 7})
    assert cfg.run.rounds == 7
