"""The `evaluate` stage: greedy, maj@n, rm@n and pass@n of a policy on the held-out set, in each
reasoning mode of `evaluate.modes` (CoT, and TIR with the model's code run in the sandbox).

rm@n: the answer of the sample the reward model scores highest; rm_maj@n: majority vote with
each sample weighted by sigmoid(RM score). Both only when the round has a reward model.

Writes predictions.parquet (every response with its mode, answer and verdict), per_problem.parquet
(each problem's verdict under every metric, per mode: what paired comparisons resample) and metrics.json:
overall and per slice (language, operation, carry), each accuracy with its standard error. CoT
metrics have plain names (greedy, maj@8, ...); TIR's the prefix "tir_" (tir_greedy, tir_maj@8, ...).

    python -m tasks.evaluate --spec spec.json

Data-parallel: a shard writes the predictions of its slice of the test problems; `finish` turns
the merged predictions into metrics.json and report.md.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import (EngineConfig, EvaluateConfig, PromptConfig, ScoreConfig, TirConfig, VerifyConfig,
                          WorldConfig)
from tasks.prompts import build_prompts
from tasks.shards import shard_rows

OUTPUTS = ("predictions.parquet",)
PER_PROBLEM = ("greedy", "maj", "rm", "rm_maj", "pass")   # per_problem.parquet's verdict columns


def run(*, evaluate: EvaluateConfig, world: WorldConfig, engine: EngineConfig, prompt: PromptConfig, tir: TirConfig,
        verify: VerifyConfig, score: ScoreConfig, stop: list[str], max_length: int | None, policy: Path,
        rm: Path | None, previous: Path | None, title: str, out_dir: Path, shard: tuple[int, int] = (0, 1)) -> dict:
    """Predictions of `policy` on the test set (this shard's slice); the whole set also gets
    metrics.json and report.md (`finish`), compared with the `previous` evaluation when given."""
    prompts, test, _ = _fitted_prompts(evaluate, engine, prompt, str(policy),
                                       shard_rows(load_test_set(evaluate, world)[0], shard))
    preds = predict(evaluate, engine, tir, verify, score, stop, max_length, str(policy), test, prompts,
                    str(rm) if rm else None)
    preds.to_parquet(Path(out_dir) / OUTPUTS[0], index=False)
    if shard != (0, 1):
        return {"predictions": len(preds)}
    return finish(Path(out_dir), evaluate=evaluate, world=world, engine=engine, prompt=prompt, policy=policy,
                  previous=previous, title=title)


def _verify(verify: VerifyConfig, responses: list[str], golds: list[str], truncated: list[bool]):
    from tasks.verify import verify_batch
    return verify_batch(responses, golds, timeout_s=verify.timeout_s, workers=verify.workers,
                        audit=verify.audit, truncated=truncated)


def samples_per_problem(e: EvaluateConfig, mode: str) -> int:
    return e.tir_n if mode == "tir" and e.tir_n is not None else e.n


def predict(e: EvaluateConfig, engine: EngineConfig, tir: TirConfig, verify: VerifyConfig, score: ScoreConfig,
            stop: list[str], max_length: int | None, model_dir: str, test: pd.DataFrame,
            prompts: dict[str, list[str]], rm_dir: str | None) -> pd.DataFrame:
    """Per mode, greedy and n sampled responses per problem, verified (plus plain math-verify's
    verdict) and RM-scored. `prompts`: {mode: one prompt per test problem}."""
    from tasks.generation import generate_in_mode
    from tasks.progress import StageProgress

    common = dict(top_p=1.0, max_tokens=e.max_tokens, seed=e.seed, stop=stop, keys=[str(i) for i in test.id])
    rows = []
    # phases: per mode greedy and sampled generation, then verification, then RM scoring
    progress = StageProgress("evaluate: phases", 2 * len(prompts) + 1 + bool(rm_dir))
    for mode, mode_prompts in prompts.items():
        n = samples_per_problem(e, mode)
        greedy = generate_in_mode(engine, tir, model_dir, mode_prompts, mode, n=1, temperature=0.0, **common)
        progress.advance()
        sampled = (generate_in_mode(engine, tir, model_dir, mode_prompts, mode, n=n, temperature=e.temperature,
                                    **common) if n else [[] for _ in mode_prompts])
        progress.advance()
        rows += [{"problem_id": pid, "mode": mode, "kind": kind, "sample_idx": j, "prompt": prompt,
                  "response": c["response"], "n_calls": c["n_calls"], "finish_reason": c["finish_reason"], "gold": gold}
                 for pid, gold, prompt, g, outs in zip(test.id, test.gold, mode_prompts, greedy, sampled)
                 for kind, batch in (("greedy", g), ("sample", outs)) for j, c in enumerate(batch)]
    preds = pd.DataFrame(rows, columns=None if rows else ["problem_id", "mode", "kind", "sample_idx", "prompt",
                                                           "response", "n_calls", "finish_reason", "gold"])
    verdicts = _verify(verify, list(preds.response), list(preds.gold), list(preds.finish_reason == "length"))
    progress.advance()
    preds["answer"] = [v.answer for v in verdicts]
    preds["correct"] = [bool(v.correct) for v in verdicts]
    preds["math_verify"] = pd.array([v.mv_correct for v in verdicts], dtype="boolean")
    sampled_rows = preds.kind == "sample"
    if rm_dir and sampled_rows.any():  # score every sampled response with the round's reward model (for rm@n)
        from tasks.rm import score_texts
        preds.loc[sampled_rows, "rm_score"] = score_texts(
            rm_dir, list(preds.prompt[sampled_rows]), list(preds.response[sampled_rows]),
            batch_size=score.batch_size, max_length=max_length)
    progress.close()
    return preds


def finish(out_dir: Path, *, evaluate: EvaluateConfig, world: WorldConfig, engine: EngineConfig, prompt: PromptConfig,
           policy: Path, previous: Path | None, title: str, **_) -> dict:
    """metrics.json and report.md from the (merged) predictions.parquet of the whole test set."""
    _, test, notes = _fitted_prompts(evaluate, engine, prompt, str(policy), load_test_set(evaluate, world)[0])
    preds = _in_order(pd.read_parquet(out_dir / OUTPUTS[0]), test, evaluate.modes)
    preds.to_parquet(out_dir / OUTPUTS[0], index=False)
    metrics = {"n_test": len(test), "n": evaluate.n, **_agreement(preds), **notes}
    slices: dict[str, dict] = {}
    verdicts = []
    for mode in evaluate.modes:
        n, prefix = samples_per_problem(evaluate, mode), "tir_" if mode == "tir" else ""
        per_problem = _per_problem(test, preds[preds["mode"] == mode])
        verdicts.append(per_problem[["id", *[c for c in PER_PROBLEM if c in per_problem]]].assign(mode=mode))
        metrics.update(_scores(per_problem, n, prefix))
        for col in ("source", "lang", "op", "carry"):
            if col in per_problem and per_problem[col].nunique() > 1:
                for val, group in per_problem.groupby(col):
                    slices.setdefault(f"{col}={val}", {}).update(_scores(group, n, prefix))
    metrics["slices"] = slices
    # per problem and mode, what each metric counted: paired comparisons between evaluations
    # (tasks/compare.py) resample these rows
    pd.concat(verdicts, ignore_index=True).to_parquet(out_dir / "per_problem.parquet", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_report(metrics, out_dir, str(previous) if previous else None, title)
    return {k: v for k, v in metrics.items() if k not in ("slices", "prompts_too_long")}


def _fitted_prompts(evaluate: EvaluateConfig, engine: EngineConfig, prompt: PromptConfig, model_dir: str,
                    test: pd.DataFrame) -> tuple[dict, pd.DataFrame, dict]:
    """Prompts in the format the model knows, without the problems whose prompt (in any mode) leaves
    no room for max_tokens in the model's context; notes for metrics.json say what was done."""
    from tasks.prompts import prompt_budget, prompt_config_for, prompts_that_fit

    prompt_cfg, prompt_format = prompt_config_for(model_dir, prompt)
    prompts = {mode: build_prompts(list(test.question), model_dir, prompt_cfg, mode) for mode in evaluate.modes}
    budget = prompt_budget(model_dir, evaluate.max_tokens, engine.max_model_len)
    fits = [all(f) for f in zip(*(prompts_that_fit(ps, model_dir, budget) for ps in prompts.values()))]
    if fits and not any(fits):
        raise ValueError(f"{model_dir}: every prompt is longer than {budget} tokens (the model's context minus "
                         f"max_tokens {evaluate.max_tokens}); lower max_tokens")
    notes = {"prompt_format": prompt_format} if prompt_cfg is not prompt else {}
    if not all(fits):
        skipped = test[[not f for f in fits]]
        notes["n_too_long"] = len(skipped)
        notes["prompts_too_long"] = {"max_prompt_tokens": budget, **skipped.source.value_counts().to_dict()}
    kept = {m: [p for p, f in zip(ps, fits) if f] for m, ps in prompts.items()}
    return kept, test[fits].reset_index(drop=True), notes


def _in_order(preds: pd.DataFrame, test: pd.DataFrame, modes: list[str]) -> pd.DataFrame:
    """Predictions in one order however they were sharded: by mode, test problem, greedy before
    samples, sample index (what one unsharded run writes)."""
    keys = pd.DataFrame({"_mode": preds["mode"].map({m: i for i, m in enumerate(modes)}),
                         "_problem": preds.problem_id.map({pid: i for i, pid in enumerate(test.id)}),
                         "_sampled": preds.kind != "greedy", "_idx": preds.sample_idx})
    order = keys.sort_values(list(keys.columns), kind="stable").index
    return preds.loc[order].reset_index(drop=True)


def benchmark_dir(e: EvaluateConfig) -> Path:
    import os
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks"
    return Path(e.data_dir or os.environ.get("SELFIMPROVE_DATA") or default)


def load_test_set(e: EvaluateConfig, world: WorldConfig) -> tuple[pd.DataFrame, list[dict]]:
    """The evaluation problems and any bad rows: benchmarks from the data dir, or the tiny world's held-out set."""
    from tasks.sources import read_problems
    from tasks.world import held_out_problems

    if not e.benchmarks:
        return pd.DataFrame(held_out_problems(world, e.n_test, e.seed)).assign(source="world"), []
    frames, bad_rows = [], []
    for name, limit in e.benchmark_limits().items():
        path = benchmark_dir(e) / name / "test.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"benchmark {name}: {path} not found (set evaluate.data_dir, --data-dir or SELFIMPROVE_DATA)")
        rows, bad = read_problems(path)
        bad_rows += bad
        df = pd.DataFrame(rows[:limit] if limit else rows)
        frames.append(df.assign(source=name, id=[f"{name}/{i}" for i in df.id]))
    return pd.concat(frames, ignore_index=True), bad_rows


def _agreement(preds: pd.DataFrame) -> dict:
    """How often our verdict agrees with plain math-verify's (an independent grader)."""
    known = preds[preds.math_verify.notna()]
    if known.empty:
        return {}
    agree = known.correct == known.math_verify.astype(bool)
    return {"mv_agreement": round(float(agree.mean()), 4), "mv_disagreements": int((~agree).sum())}


def _write_report(metrics: dict, out_dir: Path, previous_dir: str | None, title: str) -> None:
    from tasks.report import flipped, round_report

    prev, fixed, broken = None, [], []
    if previous_dir and (Path(previous_dir) / "metrics.json").exists():
        prev = json.loads((Path(previous_dir) / "metrics.json").read_text())
        fixed, broken = flipped(Path(previous_dir) / "predictions.parquet", out_dir / "predictions.parquet")
    audited = "mv_agreement" in metrics  # verify.audit off: no independent verdicts to compare with
    disagreements = _disagreements(pd.read_parquet(out_dir / "predictions.parquet")) if audited else None
    report = round_report(metrics, prev, fixed, broken, title, disagreements)
    (out_dir / "report.md").write_text(report + _notes(metrics))


def _notes(metrics: dict) -> str:
    """What the evaluation had to adapt to the model, in words."""
    lines = [f"- prompts: {metrics['prompt_format']}"] if "prompt_format" in metrics else []
    if too_long := metrics.get("prompts_too_long"):
        per = ", ".join(f"{k} {v}" for k, v in too_long.items() if k != "max_prompt_tokens")
        lines.append(f"- skipped {metrics['n_too_long']} problems whose prompt is longer than "
                     f"{too_long['max_prompt_tokens']} tokens (the model's context minus max_tokens): {per}")
    return "\n## Notes\n\n" + "\n".join(lines) + "\n" if lines else ""


def _disagreements(preds: pd.DataFrame) -> list[dict]:
    """Every response where our verdict and plain math-verify's differ, for a person to judge."""
    known = preds[preds.math_verify.notna()]
    differ = known[known.correct != known.math_verify.astype(bool)]
    return [{"problem_id": r.problem_id, "mode": r.mode, "kind": r.kind, "sample_idx": r.sample_idx, "gold": r.gold,
             "answer": r.answer if isinstance(r.answer, str) else None, "ours": bool(r.correct),
             "math_verify": bool(r.math_verify),
             "tail": r.response[-160:]} for r in differ.itertuples()]


def _per_problem(test: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    from tasks.rm import best_of_n, rm_weighted_majority
    from tasks.verify import majority_vote, verify_batch

    out = test.copy()
    greedy = preds[preds.kind == "greedy"].set_index("problem_id").correct
    samples = preds[preds.kind == "sample"]
    out["greedy"] = out.id.map(greedy).astype(bool)
    if samples.empty:
        return out
    by_problem = samples.groupby("problem_id")
    out["pass"] = out.id.map(by_problem.correct.any()).astype(bool)
    out["sample_acc"] = out.id.map(by_problem.correct.mean()).astype(float)
    def right(picked: pd.Series) -> list[bool]:
        # through verify_batch, not is_equivalent: model answers get the per-item time limit
        answers = list(out.id.map(picked))
        verdicts = verify_batch([f"\\boxed{{{a}}}" if a is not None else "" for a in answers], list(out.gold))
        return [a is not None and bool(v.correct) for a, v in zip(answers, verdicts)]

    out["maj"] = right(by_problem.answer.apply(lambda a: majority_vote(list(a))))
    if "rm_score" in samples:
        out["rm"] = right(by_problem.apply(lambda g: best_of_n(list(g.answer), list(g.rm_score))))
        out["rm_maj"] = right(by_problem.apply(lambda g: rm_weighted_majority(list(g.answer), list(g.rm_score))))
    return out


def _scores(df: pd.DataFrame, n: int, prefix: str = "") -> dict:
    """Accuracies with standard errors; names get `prefix` (e.g. "tir_greedy")."""
    def acc(col):
        p = float(df[col].mean()) if len(df) else 0.0
        return round(p, 4), round(math.sqrt(p * (1 - p) / max(len(df), 1)), 4)

    out = {"count": len(df)}
    for name, col in (("greedy", "greedy"), (f"maj@{n}", "maj"), (f"rm@{n}", "rm"), (f"rm_maj@{n}", "rm_maj"),
                      (f"pass@{n}", "pass"), ("sample_acc", "sample_acc")):
        if col in df and (col == "greedy" or n > 0):
            out[prefix + name], out[f"{prefix}{name}_se"] = acc(col)
    return out


if __name__ == "__main__":
    stage_main(run)
