"""Training plumbing shared by the training stages (bootstrap pretraining, sft, reward, grpo).

    from tasks.training import train
    train("runs/tiny/round-00/00-bootstrap/model", prompts, completions, "/tmp/out", TrainConfig())

The same code runs in the flow's process (the tiny default) and as a launched job: under
`accelerate launch` every process runs it, TRL/accelerate split the batches, DeepSpeed shards
optimizer state (ZeRO-2) or parameters too (ZeRO-3), and rank 0 writes the checkpoint.
`TrainConfig.batch_size` is the global batch per optimiser step (before grad_accum), so a
2-process run takes the same steps on the same data as a 1-process run.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from tasks.common import check_checkpoint
from tasks.config import TrainConfig

log = logging.getLogger(__name__)


def world_size() -> int:
    """Processes in this training job (accelerate launch / torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_device_batch(batch_size: int, label: str) -> int:
    world = world_size()
    if batch_size % world:
        raise ValueError(f"{label}: batch_size {batch_size} is not a multiple of the {world} training processes")
    return batch_size // world


def check_distributed(accelerator, deepspeed: str | None, label: str) -> None:
    """Fail loudly when the launch did not give what was asked for. Two silent traps on CPU: a
    launch whose processes each train alone (all rank 0), and DeepSpeed asked for but not used."""
    expected = world_size()
    log.info("%s: %s, %d process(es), deepspeed %s", label, accelerator.distributed_type,
             accelerator.num_processes, "on" if deepspeed else "off")
    if accelerator.num_processes != expected:
        raise RuntimeError(f"{label}: launched as {expected} processes but training sees {accelerator.num_processes}; "
                           "on CPU use `accelerate launch --multi_gpu` with use_cpu (tasks/training.py does)")
    if deepspeed and accelerator.state.deepspeed_plugin is None:
        raise RuntimeError(f"{label}: train.deepspeed={deepspeed} is set but DeepSpeed is not in use")


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train(model_dir: str | Path, prompts: list[str], completions: list[str], out_dir: str | Path,
          train_cfg: TrainConfig, max_length: int | None = None, label: str = "sft") -> dict:
    """Fine-tune `model_dir` on (prompt, completion) pairs with TRL's SFTTrainer, loss on the
    completion only (TRL appends EOS); save model + tokenizer to `out_dir`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if not prompts:
        raise ValueError(f"{label}: no training examples (did every sample fail verification?)")
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
        per_device_train_batch_size=per_device_batch(train_cfg.batch_size, label),
        gradient_accumulation_steps=train_cfg.grad_accum,
        warmup_steps=train_cfg.warmup_ratio, weight_decay=train_cfg.weight_decay,
        lr_scheduler_type=train_cfg.lr_scheduler, completion_only_loss=train_cfg.completion_only,
        max_length=max_length, bf16=train_cfg.bf16, gradient_checkpointing=False, seed=train_cfg.seed,
        data_seed=train_cfg.seed,
        logging_steps=max(1, len(prompts) // train_cfg.batch_size // 5), save_strategy="no", report_to=[],
        deepspeed=train_cfg.deepspeed, dataloader_num_workers=0, disable_tqdm=not os.isatty(2),
        dataset_num_proc=None,
        # multi-process on CPU: without use_cpu, each process would train alone as rank 0 (gloo is used)
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[progress_callback(f"{label}: steps")])
    check_distributed(trainer.accelerator, train_cfg.deepspeed, label)
    started = time.time()
    result = trainer.train()
    trainer.save_model(str(out_dir))          # rank 0 writes; ZeRO-3 gathers the weights first
    losses = [round(h["loss"], 4) for h in trainer.state.log_history if "loss" in h]
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out_dir))
        finish_checkpoint(Path(model_dir), out_dir)
    return {"train_examples": len(prompts), "train_loss": round(float(result.training_loss), 4),
            "train_steps": int(result.global_step), "train_s": round(time.time() - started, 1),
            "train_processes": world_size(), "train_distributed": trainer.accelerator.distributed_type.value,
            "loss_curve": losses}


def finish_checkpoint(src: Path, out_dir: Path) -> None:
    """Keep pinned tokenizer settings (class, padding side) that save_pretrained may rewrite, and
    drop what would make two identical trainings differ byte for byte (training_args.bin holds
    the temporary output path) or is only trainer scratch."""
    if (src / "tokenizer_config.json").exists():
        shutil.copy(src / "tokenizer_config.json", out_dir / "tokenizer_config.json")
    (out_dir / "training_args.bin").unlink(missing_ok=True)
    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)


def progress_callback(description: str):
    """Training steps as stage progress (the terminal already has the trainer's bar)."""
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
