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


def test_generation_overrides_apply_from_their_generation_on(tmp_path):
    cfg_file = tmp_path / "two.yaml"
    cfg_file.write_text("run: {generations: 3}\nsft:\n  train: {lr: 1.0e-3, epochs: 2}\n"
                        "generation_overrides:\n  2: {sft.train.lr: 3.0e-4}\n  3: {sft.train.epochs: 1}\n")
    cfg = load_config(cfg_file)
    assert cfg.for_generation(1) is cfg
    assert (cfg.for_generation(2).sft.train.lr, cfg.for_generation(2).sft.train.epochs) == (3e-4, 2)
    assert (cfg.for_generation(3).sft.train.lr, cfg.for_generation(3).sft.train.epochs) == (3e-4, 1)
    assert cfg.for_generation(3).reward == cfg.reward


def test_generation_overrides_keep_generation_one_keys():
    """An override for generation 2 leaves every generation-1 stage key as it was (a run with the
    override reuses a run without it), and changes the key of generation 2's SFT."""
    from flows.stages import stage_args, stage_key

    plain = load_config(CONFIGS[0])
    tuned = load_config(CONFIGS[0], {"generation_overrides": {2: {"sft.train.lr": 1e-5}}})

    def sft_key(cfg):
        return stage_key("sft", stage_args("sft", cfg, {"policy": None, "kept": [], "corpus": None, "max_length": 128}))

    assert sft_key(tuned.for_generation(1)) == sft_key(plain)
    assert sft_key(tuned.for_generation(2)) != sft_key(plain)
    assert sft_key(tuned.for_generation(2)) == sft_key(plain.model_copy(update={"sft": tuned.for_generation(2).sft}))


@pytest.mark.parametrize("overrides, named", [
    ({1: {"sft.train.lr": 1e-4}}, "start at generation 2"),
    ({2: {"world.ops": ["add"]}}, "generation_overrides.2.world.ops: world is the same for every generation"),
    ({2: {"sft.train.lrr": 1e-4}}, "sft.train.lrr: unknown field; allowed here: lr"),
    ({2: {"sft.train.lr": "fast"}}, "sft.train.lr: Input should be a valid number"),
])
def test_bad_generation_overrides_are_named_at_load(tmp_path, overrides, named):
    with pytest.raises(ConfigError) as e:
        load_config(CONFIGS[0], {"generation_overrides": overrides})
    assert str(CONFIGS[0]) in str(e.value) and named in str(e.value)
