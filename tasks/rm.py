"""The reward model (RM): the report's listwise loss, scoring, best-of-n, and RM training.

    from tasks.rm import train_reward_model, score_texts
    train_reward_model(policy_dir, groups, out_dir, cfg.reward)      # -> out_dir (a checkpoint)
    score_texts(rm_dir, prompts, responses, batch_size=64)          # -> [float]

Used by the `reward` stage (training), `score`, `evaluate` (rm@n) and `grpo` (the shaped reward).
The RM is the policy with a scalar head in place of the LM head (`AutoModelForSequenceClassification`,
num_labels=1). For a problem with n sampled responses of which k are verified correct the loss is

    L = -1/(k(n-k)) * sum over (pos, neg) pairs of log sigmoid(r(x, y_pos) - r(x, y_neg))

averaged over the groups with 0 < k < n (the others hold no ranking signal). A sequence's score is
the head's output at its last non-pad token, so batches are padded on the right (see `encode`).
Training runs through accelerate, so the same loop runs in-process and under `accelerate launch`
with several processes and DeepSpeed ZeRO (tasks/training.py).
"""
from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pandas as pd

from tasks.common import check_checkpoint
from tasks.config import RewardConfig

if TYPE_CHECKING:
    import torch

Progress = Callable[[int, int], None]  # (sequences done, sequences in all)


# ---------------------------------------------------------------------------- loss and metrics

def listwise_loss(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The report's listwise loss over groups: scores [G, n] float, labels [G, n] bool (True = correct).

    Per group -1/(k(n-k)) * sum over (pos, neg) pairs of log sigmoid(r_pos - r_neg), averaged over
    the groups with 0 < k < n; groups with no positive or no negative are skipped. When no group
    qualifies the result is a zero that keeps the graph (never NaN). `mask` [G, n] marks the real
    entries of ragged groups (padded entries must hold finite scores and join no pair).
    """
    import torch.nn.functional as F

    pos, neg = labels.bool(), ~labels.bool()
    if mask is not None:
        pos, neg = pos & mask.bool(), neg & mask.bool()
    pairs = pos[:, :, None] & neg[:, None, :]  # [G, i, j]: i positive, j negative
    logsig = F.logsigmoid(scores[:, :, None] - scores[:, None, :])
    n_pairs = pairs.sum((1, 2))  # k(n-k) per group
    per_group = -logsig.masked_fill(~pairs, 0.0).sum((1, 2)) / n_pairs.clamp(min=1)
    valid = n_pairs > 0
    if not bool(valid.any()):
        return scores[..., :0].sum()  # 0.0 with grad_fn, and no NaN even if scores hold inf
    return per_group[valid].mean()


def pair_accuracy(scores, labels, mask=None) -> float | None:
    """Share of (pos, neg) pairs within a group where pos scores higher (ties count half).

    Pooled over all pairs of all groups (inputs as in `listwise_loss`); None when there is no pair.
    """
    import torch

    scores, labels = torch.as_tensor(scores, dtype=torch.float64), torch.as_tensor(labels, dtype=torch.bool)
    pos, neg = labels, ~labels
    if mask is not None:
        mask = torch.as_tensor(mask, dtype=torch.bool)
        pos, neg = pos & mask, neg & mask
    pairs = pos[:, :, None] & neg[:, None, :]
    diff = scores[:, :, None] - scores[:, None, :]
    wins = (diff > 0).double() + 0.5 * (diff == 0).double()
    total = int(pairs.sum())
    return float(wins[pairs].sum()) / total if total else None


def best_of_n(answers: list[str | None], scores: list[float]) -> str | None:
    """RM@N: the answer of the highest-scored sample.

    Samples without an answer (None, NaN or blank) are no candidates, nor are NaN scores; a tie
    goes to the earliest sample (so the result is deterministic in sample order). None when no
    sample has an answer.
    """
    best, best_score = None, -math.inf
    for answer, score in zip(answers, scores, strict=True):
        if answer is None or answer != answer or not str(answer).strip() or score != score:
            continue
        if best is None or score > best_score:
            best, best_score = str(answer), float(score)
    return best


def rm_weighted_majority(answers: list[str | None], scores: list[float], **verify_kw) -> str | None:
    """RM-weighted Maj@N: each sample votes for its answer with weight sigmoid(rm_score).

    Equivalence classes, ties and None answers as in `tasks.verify.majority_vote` (kwargs go there).
    """
    from tasks.verify import majority_vote

    weights = [0.0 if s != s else 1.0 / (1.0 + math.exp(-max(min(s, 50.0), -50.0))) for s in scores]
    return majority_vote(answers, weights, **verify_kw)


# ---------------------------------------------------------------------------- scoring

def encode(tokenizer, prompts: list[str], responses: list[str], max_length: int | None) -> list[list[int]]:
    """Token ids of prompt + response. Too long: cut from the left, since the score is read at the end."""
    tokenizer.truncation_side = "left"
    texts = [p + r for p, r in zip(prompts, responses, strict=True)]
    return tokenizer(texts, add_special_tokens=False, truncation=max_length is not None,
                     max_length=max_length)["input_ids"]


def _forward(model, ids: list[list[int]], pad_id: int) -> torch.Tensor:
    """Scores [len(ids)] of one right-padded batch.

    Qwen2ForSequenceClassification (transformers 5.x GenericForSequenceClassification) reads the head
    at the rightmost token that is not `config.pad_token_id` (so that id must be set, and a text must
    not end in it), and Qwen2 numbers positions 0.. from the left edge of the batch, ignoring the
    attention mask. With right padding every row keeps the positions of an unpadded pass and is
    scored at its own last token. (Left padding shifts positions; RoPE is relative, so the scores
    agree only up to float error.)
    """
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, :len(x)] = torch.tensor(x, dtype=torch.long)
        attention[row, :len(x)] = 1
    device = next(model.parameters()).device
    return model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits[:, 0].float()


def score_ids(model, ids: list[list[int]], pad_id: int, batch_size: int,
              on_progress: Progress | None = None) -> list[float]:
    """Scores in input order, each distinct sequence scored once; `on_progress(done, total)` counts
    distinct sequences.

    n samples of one problem often coincide (tiny world, round 2's evaluation: 8,000 sampled
    responses, 1,707 distinct; scoring 13.3 s -> 2.8 s), and a text then gets one score wherever it
    appears (a batch's padding moves scores by ~1e-7)."""
    keys = [tuple(x) for x in ids]
    distinct = list(dict.fromkeys(keys))
    by_sequence = dict(zip(distinct, score_batched(model, distinct, pad_id, batch_size, on_progress)))
    return [by_sequence[k] for k in keys]


def score_batched(model, ids: list, pad_id: int, batch_size: int, on_progress: Progress | None = None) -> list[float]:
    """Scores of every sequence in input order; batches are built from length-sorted sequences (less padding)."""
    import torch

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = [0.0] * len(ids)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, s in zip(chunk, _forward(model, [ids[i] for i in chunk], pad_id).tolist()):
                out[i] = s
            if on_progress:
                on_progress(min(start + batch_size, len(ids)), len(ids))
    return out


def load_rm(rm_dir: str | Path):
    """(model, tokenizer) of a saved RM, in eval mode, on the GPU when there is one."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    check_checkpoint(rm_dir)
    tokenizer = AutoTokenizer.from_pretrained(rm_dir)
    tokenizer.padding_side = "right"
    on_gpu = torch.cuda.is_available()   # bf16 on GPUs; float32 on CPU, where bf16 is slow
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir, num_labels=1,
                                                               dtype=torch.bfloat16 if on_gpu else torch.float32)
    if model.config.pad_token_id is None:
        raise ValueError(f"RM {rm_dir}: config.pad_token_id is unset, so padded batches would be scored at "
                         "the wrong token; save it with tasks.reward.train_reward_model")
    return model.to("cuda" if torch.cuda.is_available() else "cpu").eval(), tokenizer


def score_texts(rm_dir: str | Path, prompts: list[str], responses: list[str], *, batch_size: int,
                max_length: int | None = None, on_progress: Progress | None = None) -> list[float]:
    """RM scores of (prompt, response) pairs, in input order; `on_progress(done, total)` per batch."""
    if not prompts:
        return []
    model, tokenizer = load_rm(rm_dir)
    ids = encode(tokenizer, prompts, responses, max_length)
    return score_ids(model, ids, model.config.pad_token_id, batch_size, on_progress)


# ---------------------------------------------------------------------------- training

def _split_groups(groups: pd.DataFrame, held_out_fraction: float, seed: int) -> tuple[list, list]:
    """Groups (problem_id, rows) with 1..n-1 positives, split by problem id into (train, held_out).

    Rows whose verdict is unknown (correct is null) are dropped first.
    """
    df = groups[groups.correct.notna()].copy()
    df["correct"] = df.correct.astype(bool)
    stats = df.groupby("problem_id").correct.agg(["sum", "count"])
    useful = sorted(stats.index[(stats["sum"] > 0) & (stats["sum"] < stats["count"])])
    random.Random(seed).shuffle(useful)
    n_held = min(int(round(held_out_fraction * len(useful))), len(useful) - 1)  # keep >= 1 to train on
    held = set(useful[:n_held])
    by_id = dict(tuple(df[df.problem_id.isin(useful)].groupby("problem_id", sort=True)))
    train = [(pid, by_id[pid]) for pid in sorted(by_id) if pid not in held]
    return train, [(pid, by_id[pid]) for pid in sorted(held)]


def _batch_scores(model, batch: list[tuple[list[list[int]], list[bool]]], pad_id: int):
    """One forward pass over every response of the batch's groups -> (scores, labels, mask) [B, n_max]."""
    import torch

    flat = [x for ids, _ in batch for x in ids]
    flat_scores = _forward(model, flat, pad_id)
    n_max = max(len(ids) for ids, _ in batch)
    scores = flat_scores.new_zeros((len(batch), n_max))
    labels = torch.zeros((len(batch), n_max), dtype=torch.bool)
    mask = torch.zeros((len(batch), n_max), dtype=torch.bool)
    at = 0
    for g, (ids, lab) in enumerate(batch):
        scores[g, :len(ids)] = flat_scores[at:at + len(ids)]
        labels[g, :len(ids)] = torch.tensor(lab)
        mask[g, :len(ids)] = True
        at += len(ids)
    return scores, labels.to(scores.device), mask.to(scores.device)


def _deepspeed_plugin(path: str | None, train_cfg):
    """A DeepSpeed plugin for our own loop: the JSON's "auto" batch fields filled from train_cfg
    (HF's Trainer fills them for sft/grpo; here nobody else would)."""
    if not path:
        return None
    import json

    from accelerate.utils import DeepSpeedPlugin

    from tasks.training import per_device_batch

    ds = json.loads(Path(path).read_text())
    fill = {"train_micro_batch_size_per_gpu": per_device_batch(train_cfg.batch_size, "reward"),
            "gradient_accumulation_steps": train_cfg.grad_accum,
            "train_batch_size": train_cfg.batch_size * train_cfg.grad_accum, "gradient_clipping": 1.0}
    for key, value in fill.items():
        if ds.get(key, "auto") == "auto":
            ds[key] = value
    for precision in ("bf16", "fp16"):
        if isinstance(ds.get(precision), dict) and ds[precision].get("enabled") == "auto":
            ds[precision]["enabled"] = bool(train_cfg.bf16) and precision == "bf16"
    # the remaining "auto" sizes (bucket sizes, ZeRO-3 prefetch) depend on the model in HF's
    # Trainer; left out here, DeepSpeed uses its own defaults
    zero = ds.get("zero_optimization", {})
    ds["zero_optimization"] = {k: v for k, v in zero.items() if v != "auto"}
    return DeepSpeedPlugin(hf_ds_config=ds)


def _train_loop(accelerator, model, data: list, pad_id: int, train_cfg) -> tuple[object, dict]:
    """AdamW over batches of groups (each rank scores its share of every batch); returns the
    prepared model and the mean loss, optimiser steps and the loss per step."""
    import torch
    from transformers import get_scheduler

    from tasks.progress import StageProgress

    per_epoch = math.ceil(len(data) / train_cfg.batch_size)  # micro-batches of groups
    micro = math.ceil(train_cfg.epochs * per_epoch)
    if train_cfg.max_steps > 0:
        micro = train_cfg.max_steps * train_cfg.grad_accum
    steps = math.ceil(micro / train_cfg.grad_accum)
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    # stepped by hand once per optimiser step: accelerate's scheduler wrapper would step once per process
    sched = get_scheduler(train_cfg.lr_scheduler, opt, num_warmup_steps=int(train_cfg.warmup_ratio * steps),
                          num_training_steps=steps)
    model, opt = accelerator.prepare(model, opt)
    rank, world = accelerator.process_index, accelerator.num_processes
    rng, order, losses, step_losses = random.Random(train_cfg.seed), [], [], []
    model.train()
    progress = StageProgress("reward: steps", micro)
    for m in range(micro):
        if not order:  # a new epoch: reshuffle the groups
            order = list(range(len(data)))
            rng.shuffle(order)
        batch = [data[i] for i in order[:train_cfg.batch_size]]
        order = order[train_cfg.batch_size:]
        mine = batch[rank::world] or batch[:1]   # every rank steps together, even on a short last batch
        with accelerator.accumulate(model):
            loss = listwise_loss(*_batch_scores(model, mine, pad_id))
            if not batch[rank::world]:
                loss = loss * 0.0
            accelerator.backward(loss)
            opt.step()
            opt.zero_grad(set_to_none=True)
        step_losses.append(float(accelerator.reduce(loss.detach(), reduction="mean")))
        if accelerator.sync_gradients:
            sched.step()
            losses.append(round(sum(step_losses) / len(step_losses), 4))
            step_losses = []
        progress.advance()
    progress.close()
    model.eval()
    return model, {"train_loss": round(sum(losses) / max(len(losses), 1), 4), "train_steps": steps,
                   "loss_curve": losses}


def train_reward_model(policy_dir: str | Path, groups: pd.DataFrame, out_dir: str | Path,
                       cfg: RewardConfig, max_length: int | None = None) -> dict:
    """Train an RM from `policy_dir` on verified groups; save model + tokenizer to `out_dir`.

    `groups` has one row per response: problem_id, prompt, response, correct (bool; null rows are
    dropped). Problems with 1..n-1 correct responses are kept; `cfg.held_out_fraction` of them
    (seeded, by problem id) are held out to measure `rm_pair_acc`.

    Our own loop, not TRL's RewardTrainer: that trainer takes (chosen, rejected) pairs, so a group
    of n would cost k(n-k) pairs of forward passes and lose the 1/(k(n-k)) group weighting; here a
    step scores each response once and applies `listwise_loss` to the whole group.
    """
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tasks.training import check_distributed, finish_checkpoint, world_size

    t = cfg.train
    train, held = _split_groups(groups, cfg.held_out_fraction, t.seed)
    if not train:
        raise ValueError("reward: no group with 1..n-1 correct responses to train on (sample more problems "
                         "or a more varied policy: reward.n_problems, reward.temperature)")
    check_checkpoint(policy_dir)
    torch.manual_seed(t.seed)
    on_cpu = not torch.cuda.is_available()
    if on_cpu and t.deepspeed:
        # as HF's Trainer does on CPU: the process group first (gloo, every launched process), then
        # DeepSpeed on top. Accelerator(cpu=True) would drop the DeepSpeed plugin silently, and
        # without the group each process would train alone.
        from accelerate import PartialState
        PartialState(cpu=True)
    accelerator = Accelerator(cpu=on_cpu and not t.deepspeed, gradient_accumulation_steps=t.grad_accum,
                              deepspeed_plugin=_deepspeed_plugin(t.deepspeed, t),
                              mixed_precision="bf16" if t.bf16 else "no")
    check_distributed(accelerator, t.deepspeed, "reward")
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(
        policy_dir, num_labels=1, dtype=torch.bfloat16 if t.bf16 else torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id  # the classifier pools at the last non-pad token

    def encode_group(rows: pd.DataFrame) -> tuple[list[list[int]], list[bool]]:
        return encode(tokenizer, list(rows.prompt), list(rows.response), max_length), list(rows.correct)

    started = time.time()
    model, stats = _train_loop(accelerator, model, [encode_group(rows) for _, rows in train], tokenizer.pad_token_id, t)
    stats["train_s"] = round(time.time() - started, 1)
    # every rank scores the held-out groups (under ZeRO-3 a forward pass needs all of them)
    stats["rm_pair_acc"] = _held_out_accuracy(model, [encode_group(rows) for _, rows in held], tokenizer.pad_token_id)

    out_dir = Path(out_dir)
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)       # gathers ZeRO-3 shards
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(out_dir, state_dict=state)
        tokenizer.save_pretrained(out_dir)
        finish_checkpoint(Path(policy_dir), out_dir)
    accelerator.wait_for_everyone()
    return {"train_groups": len(train), "held_out_groups": len(held), "train_processes": world_size(),
            "train_distributed": accelerator.distributed_type.value, **stats}


def _held_out_accuracy(model, data: list, pad_id: int) -> float | None:
    if not data:
        return None
    flat = score_ids(model, [x for ids, _ in data for x in ids], pad_id, batch_size=64)
    scores, labels, at = [], [], 0
    for ids, lab in data:
        scores.append(flat[at:at + len(ids)])
        labels.append(lab)
        at += len(ids)
    n_max = max(len(s) for s in scores)
    pad = lambda xs, fill: [x + [fill] * (n_max - len(x)) for x in xs]  # noqa: E731
    acc = pair_accuracy(pad(scores, 0.0), pad(labels, False), pad([[True] * len(s) for s in scores], False))
    return None if acc is None else round(acc, 4)
