"""The `synthesize` stage: the last policy's verified solutions to fresh problems, as pretraining
text for generation 2 -> synthesized.parquet.

    python -m tasks.synthesize --spec spec.json

The report's first self-improvement (Qwen2-Math-Instruct writes Math Corpus v2). The flow draws the
fresh problems (`problems` stage, `synthesize.seed`) and samples them (`sample` stage, CoT and TIR,
sharded like any sampling); this stage turns the verified samples into corpus rows:
- kept only when the verifier accepts them (`correct`; problems without a gold answer go by the
  majority vote, as in `verify`); a truncated response is never kept;
- deduplicated (identical solutions to the same problem once; one solution per problem, chosen
  with a seeded draw so the corpus does not favour a sample index);
- decontaminated against every eval set, on question and solution (the report's rule).
Rows have the bootstrap corpus's columns (id, question, gold, solution, mode, lang, ...) plus
`source: synthesized`, so `pretrain` mixes them with the corpus as they are.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.common import stage_main
from tasks.config import DecontaminateConfig, SynthesizeConfig

CORPUS_FIELDS = ("id", "question", "gold", "solution", "mode", "lang", "op", "a", "b", "carry")


def run(*, synthesize: SynthesizeConfig, decontaminate: DecontaminateConfig, verified: Path, problems: Path,
        out_dir: Path) -> dict:
    from tasks.decontaminate import decontaminate_frame

    samples = pd.read_parquet(verified)
    rows = corpus_rows(samples, pd.read_parquet(problems), seed=synthesize.seed)
    rows, removed = decontaminate_frame(rows, decontaminate, ("question", "solution"), Path(out_dir))
    rows.to_parquet(Path(out_dir) / "synthesized.parquet", index=False)
    attempted = int(samples.problem_id.nunique()) if len(samples) else 0
    return {"problems": attempted, "samples": len(samples), "synthesized": len(rows),
            "tir_rows": int((rows["mode"] == "tir").sum()) if len(rows) else 0,
            "kept_share": round(len(rows) / attempted, 4) if attempted else 0.0, **removed}


def corpus_rows(samples: pd.DataFrame, problems: pd.DataFrame, seed: int) -> pd.DataFrame:
    """One verified, untruncated solution per problem, as corpus rows in problem order."""
    columns = [c for c in CORPUS_FIELDS if c in problems.columns or c in ("solution", "mode")] + ["source"]
    if samples.empty:
        return pd.DataFrame(columns=columns)
    ok = samples.correct.fillna(False).astype(bool)
    if "finish_reason" in samples:
        ok &= samples.finish_reason != "length"
    good = samples[ok].drop_duplicates(["problem_id", "response"])
    picked = good.sample(frac=1.0, random_state=seed).groupby("problem_id", sort=False).head(1)
    picked = picked.rename(columns={"response": "solution"})[["problem_id", "solution", "mode"]]
    out = problems.drop(columns=[c for c in ("mode", "source") if c in problems], errors="ignore").merge(
        picked, left_on="id", right_on="problem_id", how="inner").drop(columns="problem_id")
    out["source"] = "synthesized"
    return out[[c for c in columns if c in out.columns]].reset_index(drop=True)


if __name__ == "__main__":
    stage_main(run)
