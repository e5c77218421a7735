"""Round 0: the base policy.

With `bootstrap.model_path` set (real models), the checkpoint is checked and recorded as is.
Otherwise the tiny world's base model is built here: a bootstrap corpus written partly by the
sloppy tutor, a byte-level BPE tokenizer trained on it (digits split one per token, like Qwen2's),
a randomly initialised Qwen2-architecture model, and pretraining with the same trainer as SFT.

    python -m tasks.bootstrap --spec spec.json        # as flows/ launches it (tasks.common.write_spec)
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from tasks import world as tiny_world
from tasks.common import check_checkpoint, stage_main
from tasks.config import BootstrapConfig, PromptConfig, TinyModelConfig, WorldConfig

EOS, PAD = "<|endoftext|>", "<|pad|>"


def train_tokenizer(texts: list[str], vocab_size: int, out_dir: Path) -> None:
    """Byte-level BPE with one digit per token, saved so AutoTokenizer and vLLM load it alike."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # One token per digit, like Qwen2's tokenizer: the column arithmetic then sees every digit
    # as the same token wherever it stands.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, PAD],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD,
                                   model_max_length=4096)
    fast.save_pretrained(out_dir)
    # Pin the class so transformers 5.x does not remap it (it maps model_type qwen2 to
    # Qwen2Tokenizer), and record the padding side, which save_pretrained drops.
    cfg_path = out_dir / "tokenizer_config.json"
    tcfg = json.loads(cfg_path.read_text())
    tcfg.update(tokenizer_class="PreTrainedTokenizerFast", padding_side="right")
    cfg_path.write_text(json.dumps(tcfg, indent=2, ensure_ascii=False))


def build_tiny_model(tiny: TinyModelConfig, seed: int, tokenizer_dir: Path, out_dir: Path) -> None:
    """A randomly initialised Qwen2ForCausalLM with the tokenizer beside it."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model_cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=tiny.hidden_size, num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads, num_key_value_heads=tiny.num_heads,
        intermediate_size=tiny.intermediate_size, max_position_embeddings=tiny.max_len,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=tok.eos_token_id, torch_dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(model_cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    for name in ("tokenizer_config.json",):  # keep our pinned tokenizer settings
        shutil.copy(tokenizer_dir / name, out_dir / name)


def run(*, bootstrap: BootstrapConfig, world: WorldConfig, prompt: PromptConfig, seed: int, n_test: int,
        test_seed: int, out_dir: Path) -> dict:
    """Write `model/` (the round-0 policy) and, for the tiny world, `corpus.parquet`; a checkpoint
    path (`bootstrap.model_path`) is checked and recorded as is."""
    from tasks.prompts import build_prompts
    from tasks.training import train

    out_dir = Path(out_dir)
    if bootstrap.model_path:
        src = check_checkpoint(bootstrap.model_path)
        (out_dir / "source.json").write_text(json.dumps({"model_path": str(src.resolve())}))
        return {"external_model": str(src.resolve())}

    b, w = bootstrap, world
    corpus = tiny_world.bootstrap_corpus(b.corpus_size, seed=seed, ops=list(w.ops), max_digits=w.max_digits,
                                         zh_fraction=w.zh_fraction, sloppy_fraction=b.sloppy_fraction,
                                         exclude=tiny_world.test_keys(w, n_test, test_seed),
                                         tir_fraction=b.tir_fraction, tir_sloppy_fraction=b.tir_sloppy_fraction)
    df = pd.DataFrame(corpus)
    df.to_parquet(out_dir / "corpus.parquet", index=False)

    tok_dir = out_dir / "tokenizer"
    train_tokenizer(list(df.question) + list(df.solution), b.tiny.vocab_size, tok_dir)
    init_dir = out_dir / "init"
    build_tiny_model(b.tiny, seed, tok_dir, init_dir)
    prompts = build_prompts(list(df.question), str(init_dir), prompt, tiny_world.corpus_modes(df))
    stats = train(init_dir, prompts, list(df.solution), out_dir / "model", b.train, b.tiny.max_len, label="bootstrap")
    shutil.rmtree(init_dir)
    return {"corpus": len(df), "sloppy": int(df.sloppy.sum()),
            "tir_rows": tiny_world.corpus_modes(df).count("tir"), **stats}


if __name__ == "__main__":
    stage_main(run)
