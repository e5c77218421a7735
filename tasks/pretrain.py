"""The `pretrain` stage: generation 2's base model from corpus v2 -> model/ and corpus.parquet.

    python -m tasks.pretrain --spec spec.json
    accelerate launch --multi_gpu --num_processes 8 -m tasks.pretrain --spec spec.json   # on GPUs

Corpus v2 is the bootstrap corpus plus the synthesized text (`synthesize` stage), about
`pretrain.synth_ratio` synthesized rows per corpus row (a seeded draw; all of them when fewer were
kept). For the tiny model the base is trained from scratch on it: a fresh initialisation of the
generation-1 base's architecture, with its tokenizer, so the two bases differ only in their data.
For a real checkpoint (`bootstrap.model_path`) it is continued pretraining of that base
(`pretrain.from_scratch` overrides either way). Corpus v2 is written beside the model: the rounds
of generation 2 replay it as they replay the bootstrap corpus.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import BootstrapConfig, PretrainConfig, PromptConfig

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def run(*, pretrain: PretrainConfig, bootstrap: BootstrapConfig, prompt: PromptConfig, max_length: int | None,
        base: Path, corpus: Path | None, synthesized: Path, out_dir: Path) -> dict:
    from tasks.prompts import build_prompts
    from tasks.training import is_main_process, train
    from tasks.world import corpus_modes

    out_dir = Path(out_dir)
    v2 = corpus_v2(pd.read_parquet(corpus) if corpus else None, pd.read_parquet(synthesized),
                   pretrain.synth_ratio, pretrain.seed)
    if v2.empty:
        raise ValueError("pretrain: corpus v2 is empty (no bootstrap corpus and no synthesized solution was kept)")
    if is_main_process():
        v2.to_parquet(out_dir / "corpus.parquet", index=False)
    from_scratch = pretrain.from_scratch if pretrain.from_scratch is not None else not bootstrap.model_path
    start = base
    if from_scratch:
        # one folder per training process: each builds the same weights from the seed, none waits
        start = out_dir / f"init-{os.environ.get('RANK', '0')}"
        fresh_model_like(base, pretrain.seed, start)
    prompts = build_prompts(list(v2.question), str(start), prompt, corpus_modes(v2))
    stats = train(start, prompts, list(v2.solution), out_dir / "model", pretrain.train, max_length, label="pretrain")
    if from_scratch:
        shutil.rmtree(start, ignore_errors=True)
    return {"corpus": len(v2), "synthesized_rows": int((v2.source == "synthesized").sum()),
            "tir_rows": corpus_modes(v2).count("tir"), "from_scratch": from_scratch, **stats}


def corpus_v2(corpus: pd.DataFrame | None, synthesized: pd.DataFrame, ratio: float, seed: int) -> pd.DataFrame:
    """The bootstrap corpus (all of it) + about `ratio` synthesized rows per corpus row; without a
    corpus (a real base model), the synthesized rows alone."""
    corpus = corpus if corpus is not None else pd.DataFrame(columns=["question", "solution"])
    corpus = corpus.assign(source="bootstrap")
    if "mode" not in corpus:
        corpus = corpus.assign(mode="cot")
    want = len(synthesized) if corpus.empty else min(len(synthesized), round(ratio * len(corpus)))
    if want < len(synthesized):
        synthesized = synthesized.sample(n=want, random_state=seed).sort_index()
    keep = [c for c in ("id", "question", "gold", "solution", "mode", "lang", "op", "a", "b", "carry", "source")
            if c in corpus.columns or c in synthesized.columns]
    return pd.concat([corpus.reindex(columns=keep), synthesized.reindex(columns=keep)], ignore_index=True)


def fresh_model_like(base: Path, seed: int, out_dir: Path) -> None:
    """A randomly initialised model with `base`'s architecture, tokenizer and generation settings."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    for f in Path(base).iterdir():   # tokenizer files and generation_config.json, as the base has them
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and f.name not in ("config.json", "model.safetensors.index.json"):
            shutil.copy(f, out_dir / f.name)


if __name__ == "__main__":
    stage_main(run)
