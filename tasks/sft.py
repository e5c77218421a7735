"""The `sft` stage: fine-tune the policy on this round's kept paths (plus replay) -> model/.

    python -m tasks.sft --spec spec.json
    accelerate launch --multi_gpu --num_processes 8 -m tasks.sft --spec spec.json   # what flows/ runs on GPUs

TRL's SFTTrainer with the loss on the completion only (tasks/training.py). `sft.replay` trains on
every earlier round's kept data too; `sft.bootstrap_replay` mixes in bootstrap corpus rows that
the verifier accepts (replay must not re-teach the bootstrap's mistakes, only what was right;
with `verify.labels: vote`, the no-verifier ablation, they are taken unfiltered).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import PromptConfig, SFTConfig, VerifyConfig


def run(*, sft: SFTConfig, verify: VerifyConfig, prompt: PromptConfig, max_length: int | None, policy: Path,
        kept: list[Path], corpus: Path | None, out_dir: Path) -> dict:
    from tasks.training import is_main_process, train

    paths = kept if sft.replay else kept[-1:]
    data = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    if sft.bootstrap_replay and corpus:
        data = pd.concat([data, _replay(sft, verify, prompt, policy, corpus)], ignore_index=True)
    if data.empty:  # nothing verified correct: the round keeps its policy instead of failing
        if is_main_process():
            shutil.copytree(policy, Path(out_dir) / "model")
        return {"n_sft": 0, "skipped": "no kept examples; policy carried over unchanged"}
    stats = train(policy, list(data.prompt), list(data.completion), Path(out_dir) / "model", sft.train, max_length)
    return {"n_sft": len(data), **stats}


def _replay(sft: SFTConfig, verify: VerifyConfig, prompt: PromptConfig, policy: Path, corpus: Path) -> pd.DataFrame:
    from tasks.prompts import build_prompts
    from tasks.world import corpus_modes

    corpus = pd.read_parquet(corpus)
    # without the verifier (verify.labels: vote, the no-verifier ablation) nothing filters the replay
    rows = verified_corpus(corpus, verify) if verify.labels == "gold" else corpus
    rows = rows.sample(n=sft.bootstrap_replay, random_state=sft.train.seed, replace=True)
    return pd.DataFrame({"prompt": build_prompts(list(rows.question), str(policy), prompt, corpus_modes(rows)),
                         "completion": list(rows.solution)})


def verified_corpus(corpus: pd.DataFrame, verify_cfg: VerifyConfig) -> pd.DataFrame:
    """The corpus rows whose solution the verifier accepts (the tiny world's sloppy tutor is out)."""
    from tasks.verify import verify_batch

    verdicts = verify_batch(list(corpus.solution), list(corpus.gold), timeout_s=verify_cfg.timeout_s,
                            workers=verify_cfg.workers)
    rows = corpus[[bool(v.correct) for v in verdicts]]
    if rows.empty:
        raise ValueError("sft.bootstrap_replay: no corpus solution passes the verifier")
    return rows


if __name__ == "__main__":
    stage_main(run)
