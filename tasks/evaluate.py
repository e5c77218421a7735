"""The `evaluate` stage: greedy, maj@n, rm@n and pass@n of a policy on the held-out set.

rm@n: the answer of the sample the reward model scores highest; rm_maj@n: majority vote with
each sample weighted by sigmoid(RM score). Both only when the round has a reward model.

Writes predictions.parquet (every response with its answer and verdict) and metrics.json:
overall and per slice (language, operation, carry), each accuracy with its standard error.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from tasks.config import Config
from tasks.engine import generate
from tasks.prompts import build_prompts


def _verify(cfg: Config, responses: list[str], golds: list[str]):
    from tasks.verify import verify_batch
    return verify_batch(responses, golds, timeout_s=cfg.verify.timeout_s, workers=cfg.verify.workers)


def run_evaluate(cfg: Config, model_dir: str, test: pd.DataFrame, out_dir: Path, rm_dir: str | None = None,
                 previous_dir: str | None = None, title: str = "Evaluation") -> dict:

    e = cfg.evaluate
    prompts = build_prompts(list(test.question), model_dir, cfg.prompt)
    common = dict(top_p=1.0, max_tokens=e.max_tokens, seed=e.seed, stop=cfg.sample.stop, engine_cfg=cfg.engine)
    greedy = [o[0]["response"] for o in generate(model_dir, prompts, n=1, temperature=0.0, **common)]
    sampled = generate(model_dir, prompts, n=e.n, temperature=e.temperature, **common)

    golds = list(test.gold)
    flat = greedy + [c["response"] for outs in sampled for c in outs]
    flat_golds = golds + [g for g in golds for _ in range(e.n)]
    verdicts = _verify(cfg, flat, flat_golds)
    rows = []
    for i, pid in enumerate(test.id):
        v = verdicts[i]
        rows.append({"problem_id": pid, "kind": "greedy", "sample_idx": 0, "response": greedy[i],
                     "answer": v.answer, "correct": bool(v.correct)})
        for j in range(e.n):
            v = verdicts[len(greedy) + i * e.n + j]
            rows.append({"problem_id": pid, "kind": "sample", "sample_idx": j,
                         "response": sampled[i][j]["response"], "answer": v.answer, "correct": bool(v.correct)})
    preds = pd.DataFrame(rows)
    if rm_dir:  # score every sampled response with the round's reward model (for rm@n)
        from tasks.reward import score_texts
        prompt_of = dict(zip(test.id, prompts))
        sampled_rows = preds.kind == "sample"
        preds.loc[sampled_rows, "rm_score"] = score_texts(
            rm_dir, [prompt_of[p] for p in preds.problem_id[sampled_rows]], list(preds.response[sampled_rows]),
            batch_size=cfg.score.batch_size, max_length=None if cfg.bootstrap.model_path else cfg.bootstrap.tiny.max_len)
    preds.to_parquet(out_dir / "predictions.parquet", index=False)

    per_problem = _per_problem(test, preds)
    metrics = {"n_test": len(test), "n": e.n, **_scores(per_problem, e.n)}
    metrics["slices"] = {f"{col}={val}": _scores(group, e.n)
                         for col in ("lang", "op", "carry") if col in per_problem
                         for val, group in per_problem.groupby(col)}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_report(metrics, out_dir, previous_dir, title)
    return {k: v for k, v in metrics.items() if k != "slices"}


def _write_report(metrics: dict, out_dir: Path, previous_dir: str | None, title: str) -> None:
    from tasks.report import flipped, round_report

    prev, fixed, broken = None, [], []
    if previous_dir and (Path(previous_dir) / "metrics.json").exists():
        prev = json.loads((Path(previous_dir) / "metrics.json").read_text())
        fixed, broken = flipped(Path(previous_dir) / "predictions.parquet", out_dir / "predictions.parquet")
    (out_dir / "report.md").write_text(round_report(metrics, prev, fixed, broken, title))


def _per_problem(test: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    from tasks.reward import best_of_n, rm_weighted_majority
    from tasks.verify import is_equivalent, majority_vote

    out = test.copy()
    greedy = preds[preds.kind == "greedy"].set_index("problem_id").correct
    samples = preds[preds.kind == "sample"]
    out["greedy"] = out.id.map(greedy).astype(bool)
    by_problem = samples.groupby("problem_id")
    out["pass"] = out.id.map(by_problem.correct.any()).astype(bool)
    out["sample_acc"] = out.id.map(by_problem.correct.mean()).astype(float)
    right = lambda picked: [v is not None and is_equivalent(v, g) for v, g in zip(out.id.map(picked), out.gold)]  # noqa: E731
    out["maj"] = right(by_problem.answer.apply(lambda a: majority_vote(list(a))))
    if "rm_score" in samples:
        out["rm"] = right(by_problem.apply(lambda g: best_of_n(list(g.answer), list(g.rm_score))))
        out["rm_maj"] = right(by_problem.apply(lambda g: rm_weighted_majority(list(g.answer), list(g.rm_score))))
    return out


def _scores(df: pd.DataFrame, n: int) -> dict:
    def acc(col):
        p = float(df[col].mean()) if len(df) else 0.0
        return round(p, 4), round(math.sqrt(p * (1 - p) / max(len(df), 1)), 4)

    out = {"count": len(df)}
    for name, col in (("greedy", "greedy"), (f"maj@{n}", "maj"), (f"rm@{n}", "rm"), (f"rm_maj@{n}", "rm_maj"),
                      (f"pass@{n}", "pass"), ("sample_acc", "sample_acc")):
        if col in df:
            out[name], out[f"{name}_se"] = acc(col)
    return out
