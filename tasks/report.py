"""Reports people read: a round's report.md (table, change against the previous round, items that
flipped) and a run's report.md with accuracy-per-round plots (PNG).

    from tasks.report import write_run_report
    write_run_report("runs/tiny")          # runs/tiny/report.md + runs/tiny/accuracy.png
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

def _metric_names(rows: list[dict]) -> list[str]:
    """Accuracy-like columns present in any round, in first-seen order."""
    names = dict.fromkeys(k for r in rows for k, v in r.items()
                          if isinstance(v, float) and not k.endswith("_se") and k != "wall_s")
    return list(names)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):  # accuracies to 3 places, seconds to 1; a "|" in a value (|x|, a response) would end the cell
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) <= 1 else f"{v:.1f}"
        return "-" if v is None else str(v).replace("|", "\\|")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def flipped(prev_preds: Path, preds: Path, limit: int = 20) -> tuple[list[dict], list[dict]]:
    """Greedy (CoT) verdicts that changed between two evaluations: (now right, now wrong)."""
    def greedy(path: Path) -> pd.DataFrame:
        df = pd.read_parquet(path)
        keep = (df.kind == "greedy") & ((df["mode"] == "cot") if "mode" in df else True)
        return df[keep].set_index("problem_id")[["response", "answer", "correct"]]

    a, b = greedy(prev_preds), greedy(preds)
    both = a.merge(b, left_index=True, right_index=True, suffixes=("_before", "_after"))
    fixed = both[~both.correct_before & both.correct_after]
    broken = both[both.correct_before & ~both.correct_after]
    pick = lambda df: [{"problem_id": i, "before": r.answer_before, "after": r.answer_after,  # noqa: E731
                        "response_after": r.response_after} for i, r in df.head(limit).iterrows()]
    return pick(fixed), pick(broken)


def round_report(metrics: dict, prev: dict | None, fixed: list[dict], broken: list[dict], title: str,
                 disagreements: list[dict] | None = None) -> str:
    """Markdown for one evaluation: overall + slices, delta against the previous round, flips, and
    every verdict that plain math-verify (an independent grader) would have given otherwise."""
    names = [m for m in metrics if not m.endswith("_se") and isinstance(metrics[m], float)]
    rows = [{"metric": m, "value": metrics[m], "se": metrics.get(f"{m}_se"),
             "previous": prev.get(m) if prev else None,
             "change": round(metrics[m] - prev[m], 4) if prev and prev.get(m) is not None else None} for m in names]
    out = [f"# {title}", "", markdown_table(rows, ["metric", "value", "se", "previous", "change"]), ""]
    slices = metrics.get("slices") or {}
    if slices:
        srows = [{"slice": k, **v} for k, v in slices.items()]
        out += ["## Slices", "", markdown_table(srows, ["slice", "count", *[m for m in names if m in srows[0]]]), ""]
    if prev is not None:
        out += [f"## Flipped items (greedy): {len(fixed)} now right, {len(broken)} now wrong (first 20 each)", ""]
        for label, items in (("now right", fixed), ("now wrong", broken)):
            out += [f"### {label}", ""] + [f"- `{x['problem_id']}`: {x['before']} -> {x['after']}" for x in items] + [""]
    if disagreements is not None:
        out += [f"## Verdicts that differ from plain math-verify: {len(disagreements)} "
                f"(agreement {metrics.get('mv_agreement', '-')})", ""]
        if disagreements:
            rows = [{**d, "tail": "`" + " ".join(str(d["tail"]).split()).replace("`", "'") + "`"} for d in disagreements]
            out += [markdown_table(rows, ["problem_id", "mode", "kind", "sample_idx", "gold", "answer", "ours",
                                          "math_verify", "tail"]), ""]
    return "\n".join(out)


def plot_rounds(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    rounds = [r["round"] for r in rows]
    for m in _metric_names(rows):
        if m in ("train_sample_acc", "rm_pair_acc"):
            continue
        ys = [r.get(m) for r in rows]
        err = [r.get(f"{m}_se") or 0 for r in rows]
        ax.errorbar(rounds, [y if y is not None else float("nan") for y in ys], yerr=err, marker="o", capsize=3, label=m)
    ax.set_xlabel("round (0 = bootstrap)")
    ax.set_ylabel("held-out accuracy")
    ax.set_xticks(rounds)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_run_report(run_dir: str | Path) -> Path:
    """runs/<run>/report.md and accuracy.png from summary.json and each round's evaluation."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = summary["rounds"]
    plot_rounds(rows, run_dir / "accuracy.png")
    columns = ["round", "phase", *_metric_names(rows), "n_test", "n_sft", "wall_s"]  # phase: "grpo" for the RL row
    text = [f"# Run {summary['run']}", "", "Held-out accuracy per round (round 0 = bootstrap model); "
            "standard errors in summary.json.", "", markdown_table(rows, [c for c in columns if any(c in r for r in rows)]),
            "", "![accuracy per round](accuracy.png)", ""]
    by_op = [{"round": r["round"], "op": op, **scores} for r in rows for op, scores in r.get("by_op", {}).items()]
    if by_op:
        text += ["## Greedy accuracy per operation, CoT and TIR", "",
                 markdown_table(by_op, [c for c in ("round", "op", "count", "greedy", "tir_greedy")
                                        if any(c in r for r in by_op)]), ""]
    for r in rows[1:]:
        folder = "rl" if r.get("phase") == "grpo" else f"round-{r['round']:02d}"
        rep = run_dir / folder / "09-evaluate" / "report.md"
        if rep.exists():
            text += [f"- round {r['round']}: [{rep.relative_to(run_dir)}]({rep.relative_to(run_dir)})"]
    path = run_dir / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path
