"""Supervised fine-tuning (and the tiny model's pretraining) with TRL's SFTTrainer.

    from tasks.sft import train
    train("runs/tiny/round-00/00-bootstrap/model", prompts, completions, "/tmp/out", TrainConfig())

Prompt/completion pairs, loss on the completion only (TRL appends EOS to each completion). On
GPUs the same call runs under `accelerate launch` / `deepspeed` with `train_cfg.deepspeed` set.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from tasks.common import check_checkpoint
from tasks.config import TrainConfig


def train(model_dir: str | Path, prompts: list[str], completions: list[str], out_dir: str | Path,
          train_cfg: TrainConfig, max_length: int | None = None, label: str = "sft") -> dict:
    """Fine-tune `model_dir` on (prompt, completion) pairs; save model + tokenizer to `out_dir`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not prompts:
        raise ValueError("sft: no training examples (did every sample fail verification?)")
    out_dir = Path(out_dir)
    check_checkpoint(model_dir)
    torch.manual_seed(train_cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32 if not train_cfg.bf16 else torch.bfloat16)
    dataset = Dataset.from_dict({"prompt": list(prompts), "completion": list(completions)})
    args = SFTConfig(
        output_dir=str(out_dir / "_trainer"),
        learning_rate=train_cfg.lr, num_train_epochs=train_cfg.epochs, max_steps=train_cfg.max_steps,
        per_device_train_batch_size=train_cfg.batch_size, gradient_accumulation_steps=train_cfg.grad_accum,
        warmup_steps=train_cfg.warmup_ratio, weight_decay=train_cfg.weight_decay,
        lr_scheduler_type=train_cfg.lr_scheduler, completion_only_loss=train_cfg.completion_only,
        max_length=max_length, bf16=train_cfg.bf16, gradient_checkpointing=False, seed=train_cfg.seed,
        data_seed=train_cfg.seed,
        logging_steps=max(1, len(prompts) // train_cfg.batch_size // 5), save_strategy="no", report_to=[],
        deepspeed=train_cfg.deepspeed, dataloader_num_workers=0, disable_tqdm=not os.isatty(2),
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[_progress_callback(f"{label}: steps")])
    started = time.time()
    result = trainer.train()
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    _copy_tokenizer_config(Path(model_dir), out_dir)
    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)
    return {"train_examples": len(prompts), "train_loss": round(float(result.training_loss), 4),
            "train_steps": int(result.global_step), "train_s": round(time.time() - started, 1)}


def _verified_corpus(corpus, verify_cfg):
    """The corpus rows whose solution the verifier accepts: replay must not re-teach the bootstrap's
    mistakes (the tiny world's sloppy tutor), only what was right in it."""
    from tasks.verify import verify_batch

    verdicts = verify_batch(list(corpus.solution), list(corpus.gold), timeout_s=verify_cfg.timeout_s,
                            workers=verify_cfg.workers)
    kept = corpus[[bool(v.correct) for v in verdicts]]
    if kept.empty:
        raise ValueError("sft.bootstrap_replay: no corpus solution passes the verifier")
    return kept


def _progress_callback(description: str):
    """Training steps as a Prefect progress artifact (the terminal already has the trainer's bar)."""
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        progress = None

        def on_train_begin(self, args, state, control, **kw):
            from tasks.progress import StageProgress
            self.progress = StageProgress(description, state.max_steps, show_bar=False)

        def on_step_end(self, args, state, control, **kw):
            self.progress.update(state.global_step)

        def on_train_end(self, args, state, control, **kw):
            self.progress.close()

    return _Progress()


def _copy_tokenizer_config(src: Path, dst: Path) -> None:
    """Keep pinned tokenizer settings (class, padding side) that save_pretrained may rewrite."""
    if (src / "tokenizer_config.json").exists():
        shutil.copy(src / "tokenizer_config.json", dst / "tokenizer_config.json")


def run_sft(cfg, policy_dir: str, sft_paths: list[str], corpus_path: str | None, out_dir: Path) -> dict:
    """The `sft` stage: fine-tune the policy on this round's kept paths (plus replay) -> model/."""
    import pandas as pd

    s = cfg.sft
    paths = sft_paths if s.replay else sft_paths[-1:]
    data = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    if s.bootstrap_replay and corpus_path:
        from tasks.bootstrap import corpus_modes
        from tasks.prompts import build_prompts
        corpus = _verified_corpus(pd.read_parquet(corpus_path), cfg.verify)
        corpus = corpus.sample(n=s.bootstrap_replay, random_state=s.train.seed, replace=True)
        replay = pd.DataFrame({"prompt": build_prompts(list(corpus.question), policy_dir, cfg.prompt,
                                                       corpus_modes(corpus)),
                               "completion": list(corpus.solution)})
        data = pd.concat([data, replay], ignore_index=True)
    if data.empty:  # nothing verified correct: the round keeps its policy instead of failing
        shutil.copytree(policy_dir, out_dir / "model")
        return {"n_sft": 0, "skipped": "no kept examples; policy carried over unchanged"}
    stats = train(policy_dir, list(data.prompt), list(data.completion), out_dir / "model", s.train, cfg.max_length())
    return {"n_sft": len(data), **stats}
