"""The reward model: listwise loss against a direct pairwise computation, scoring, a tiny end-to-end run."""
from __future__ import annotations

import math
import random

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tasks import world
from tasks.config import Config, RewardConfig
from tasks.reward import run as run_reward_stage
from tasks.rm import (best_of_n, listwise_loss, pair_accuracy, score_texts,
                          train_reward_model)


def pairwise_reference(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The report's formula written out: a double loop over (pos, neg) pairs, group by group."""
    per_group = []
    for r, y in zip(scores, labels):
        pos = [i for i in range(len(y)) if y[i]]
        neg = [j for j in range(len(y)) if not y[j]]
        if pos and neg:
            total = sum(F.logsigmoid(r[i] - r[j]) for i in pos for j in neg)
            per_group.append(-total / (len(pos) * len(neg)))
    return torch.stack(per_group).mean()


# ---------------------------------------------------------------------------- listwise_loss

@pytest.mark.parametrize("G,n", [(1, 2), (4, 3), (8, 6), (5, 8), (16, 6)])
def test_loss_matches_pairwise_double_loop(G, n):
    gen = torch.Generator().manual_seed(G * 100 + n)
    for _ in range(5):
        scores = torch.randn(G, n, generator=gen, dtype=torch.float64) * 3
        labels = torch.rand(G, n, generator=gen) < 0.5
        labels[0, 0], labels[0, 1] = True, False  # at least one group qualifies
        assert torch.allclose(listwise_loss(scores, labels), pairwise_reference(scores, labels))


def test_groups_with_zero_or_all_positives_are_skipped():
    scores = torch.tensor([[0.3, -1.0, 2.0], [5.0, 1.0, -2.0], [1.0, 0.0, 0.5]])
    labels = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    loss = listwise_loss(scores, labels)
    assert torch.isfinite(loss)
    assert torch.allclose(loss, pairwise_reference(scores[:1], labels[:1]))


def test_all_groups_skipped_gives_zero_with_grad():
    scores = torch.randn(3, 6, requires_grad=True)
    labels = torch.tensor([[True] * 6, [False] * 6, [True] * 6])
    loss = listwise_loss(scores, labels)
    assert loss.item() == 0.0 and loss.requires_grad and loss.grad_fn is not None
    loss.backward()
    assert torch.equal(scores.grad, torch.zeros_like(scores))
    inf_scores = torch.full((1, 2), math.inf, requires_grad=True)
    assert listwise_loss(inf_scores, torch.tensor([[True, True]])).item() == 0.0  # never NaN


def test_loss_is_differentiable():
    scores = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([[1, 0, 0, 1, 0, 0], [1, 1, 1, 1, 1, 0], [0] * 6, [0, 1, 0, 1, 0, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda s: listwise_loss(s, labels), (scores,))
    listwise_loss(scores, labels).backward()
    assert torch.isfinite(scores.grad).all() and scores.grad.abs().sum() > 0
    mixed = labels.any(1) & ~labels.all(1)
    grad, lab = scores.grad[mixed], labels[mixed]
    assert (grad[lab] < 0).all() and (grad[~lab] > 0).all()  # descent raises positives, lowers negatives
    assert torch.equal(scores.grad[2], torch.zeros(6))  # the all-wrong group gets no gradient


def test_loss_falls_as_positives_rise():
    gen = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(6, 6, generator=gen), torch.rand(6, 6, generator=gen) < 0.5
    labels[:, 0], labels[:, 1] = True, False
    losses = [listwise_loss(scores + step * labels.float(), labels).item() for step in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert all(a > b for a, b in zip(losses, losses[1:]))


def test_ragged_groups_with_mask_match_the_unpadded_groups():
    scores = torch.tensor([[1.0, -0.5, 0.2, 0.0], [0.3, 0.9, 0.0, 0.0]])
    labels = torch.tensor([[True, False, False, False], [False, True, True, True]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    want = (pairwise_reference(scores[:1, :3], labels[:1, :3]) + pairwise_reference(scores[1:, :2], labels[1:, :2])) / 2
    assert torch.allclose(listwise_loss(scores, labels, mask), want)


def test_pair_accuracy_and_best_of_n():
    assert pair_accuracy([[3.0, 1.0, 2.0]], [[True, False, False]]) == 1.0
    assert pair_accuracy([[1.0, 2.0, 1.0]], [[True, False, False]]) == 0.25  # one loss, one tie
    assert pair_accuracy([[1.0, 2.0]], [[True, True]]) is None
    assert best_of_n(["5", "6", None, "7"], [0.1, 0.9, 5.0, 0.9]) == "6"  # None skipped; tie -> earliest
    assert best_of_n([None, ""], [1.0, 2.0]) is None


# ---------------------------------------------------------------------------- tiny end to end

TINY = {"bootstrap": {"tiny": {"hidden_size": 64, "num_layers": 1, "num_heads": 1, "intermediate_size": 128,
                               "max_len": 128, "vocab_size": 300}}}


def carry_groups(n_problems: int, n: int, seed: int) -> pd.DataFrame:
    """Groups of n where the correct responses carry and the wrong ones (the sloppy tutor's) do not."""
    rng = random.Random(seed)
    problems = world.make_problems(6 * n_problems, seed=seed, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5)
    rows = []
    for p in [p for p in problems if p["carry"]][:n_problems]:
        labels = [True] * rng.randint(1, n - 1)
        labels += [False] * (n - len(labels))
        rng.shuffle(labels)
        rows += [{"problem_id": p["id"], "sample_idx": i, "prompt": p["question"] + "\n",
                  "response": world.solve_cot(p, sloppy=not ok), "correct": ok} for i, ok in enumerate(labels)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def policy(tmp_path_factory, threads):
    from tasks.bootstrap import build_tiny_model, train_tokenizer

    cfg = Config.model_validate(TINY)
    root = tmp_path_factory.mktemp("policy")
    problems = world.make_problems(300, seed=3, ops=["add", "sub", "mul"], max_digits=3, zh_fraction=0.5)
    texts = [p["question"] for p in problems] + [world.solve_cot(p, sloppy=s) for p in problems for s in (False, True)]
    train_tokenizer(texts, cfg.bootstrap.tiny.vocab_size, root / "tok")
    build_tiny_model(cfg.bootstrap.tiny, cfg.run.seed, root / "tok", root / "policy")
    return root / "policy"


@pytest.fixture(scope="module")
def trained(policy, tmp_path_factory):
    groups = carry_groups(100, 6, seed=5)
    extra = carry_groups(4, 6, seed=9).assign(correct=False)  # all wrong: dropped, not an error
    rc = RewardConfig.model_validate({"held_out_fraction": 0.25, "train": {
        "lr": 1e-3, "epochs": 6, "batch_size": 8, "lr_scheduler": "constant", "completion_only": False}})
    out = tmp_path_factory.mktemp("rm") / "model"
    stats = train_reward_model(policy, pd.concat([groups, extra]), out, rc, max_length=128)
    return out, stats


def test_reward_model_learns_a_real_signal(trained):
    out, stats = trained
    assert stats["train_groups"] == 75 and stats["held_out_groups"] == 25
    assert stats["rm_pair_acc"] > 0.85, stats  # an untrained head sits near 0.5 (0.46 measured)
    assert (out / "config.json").exists() and (out / "tokenizer_config.json").exists()


def test_batched_scores_equal_one_at_a_time(trained):
    out, _ = trained
    df = carry_groups(10, 3, seed=11)  # responses of different lengths -> padded batches
    df = df.drop_duplicates(["prompt", "response"])
    prompts, responses = list(df.prompt), list(df.response)
    seen = []
    # every text twice, the copies far apart: each distinct text is scored once, copies share it
    batched = score_texts(out, prompts + prompts[::-1], responses + responses[::-1], batch_size=7,
                          on_progress=lambda d, t: seen.append((d, t)))
    single = score_texts(out, prompts, responses, batch_size=1)
    assert torch.allclose(torch.tensor(batched[:len(df)]), torch.tensor(single), atol=1e-5)
    assert batched[len(df):] == batched[:len(df)][::-1]
    assert seen[-1] == (len(df), len(df)) and len(seen) == math.ceil(len(df) / 7)


def run_score(cfg, rm, verified, out_dir):
    from tasks.score import run
    return run(score=cfg.score, max_length=cfg.max_length(), rm=rm, verified=verified, out_dir=out_dir)


def run_reward(cfg, policy, groups, out_dir):
    return run_reward_stage(reward=cfg.reward, max_length=cfg.max_length(), policy=policy, groups=groups, out_dir=out_dir)


def test_run_score_and_run_reward_write_their_outputs(trained, policy, tmp_path):
    out, _ = trained
    cfg = Config.model_validate({**TINY, "reward": {"held_out_fraction": 0.0, "train": {"max_steps": 1, "batch_size": 4}}})
    df = carry_groups(6, 3, seed=13)
    df["correct"] = df.correct.astype("boolean")  # as verify writes it: null = no verdict
    df.loc[0, "correct"] = pd.NA
    df.to_parquet(tmp_path / "verified.parquet", index=False)

    counts = run_score(cfg, out, tmp_path / "verified.parquet", tmp_path)
    scored = pd.read_parquet(tmp_path / "scored.parquet")
    assert counts["scored"] == len(df) == len(scored) and scored.rm_score.notna().all()
    assert list(scored.problem_id) == list(df.problem_id)

    (tmp_path / "none").mkdir()
    assert run_score(cfg, None, tmp_path / "verified.parquet", tmp_path / "none")["scored"] == 0
    assert pd.read_parquet(tmp_path / "none" / "scored.parquet").rm_score.isna().all()

    (tmp_path / "reward").mkdir()
    stats = run_reward(cfg, policy, tmp_path / "verified.parquet", tmp_path / "reward")
    known = df[df.correct.notna()].groupby("problem_id").correct.agg(["sum", "count"])
    mixed = int(((known["sum"] > 0) & (known["sum"] < known["count"])).sum())
    assert stats["train_groups"] == mixed > 0 and stats["train_steps"] == 1 and stats["rm_pair_acc"] is None
    assert (tmp_path / "reward" / "model" / "config.json").exists()


def test_run_reward_without_mixed_groups_writes_no_model(tmp_path):
    df = carry_groups(3, 4, seed=17).assign(correct=True)
    df.to_parquet(tmp_path / "verified.parquet", index=False)
    stats = run_reward(Config.model_validate(TINY), tmp_path / "no-policy-needed", tmp_path / "verified.parquet", tmp_path)
    assert stats["groups_all_correct"] == 3 and "skipped" in stats and not (tmp_path / "model").exists()
