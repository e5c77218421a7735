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


# Per-mode accuracy columns, in the order of the report's tables; "@n" metrics take the run's n.
MODE_METRICS = ("greedy", "maj@", "rm@", "rm_maj@", "pass@", "sample_acc")
RUN_COLUMNS = ("rm_pair_acc", "train_sample_acc", "mv_agreement", "n_test", "n_sft", "wall_s")


def _metric_rank(base: str) -> int | None:
    """Position of a per-mode metric ('maj@8', 'greedy') in MODE_METRICS; None for other columns."""
    for i, prefix in enumerate(MODE_METRICS):
        if base == prefix or (prefix.endswith("@") and base.startswith(prefix) and base[len(prefix):].isdigit()):
            return i
    return None


def _mode_metric(name: str) -> tuple[str, str] | None:
    """'tir_maj@8' -> ('tir', 'maj@8'); 'greedy' -> ('cot', 'greedy'); None for other columns."""
    mode, base = ("tir", name[4:]) if name.startswith("tir_") else ("cot", name)
    return (mode, base) if _metric_rank(base) is not None else None


def by_mode(rows: list[dict]) -> tuple[list[dict], list[str]]:
    """One row per (round, mode) with the same accuracy columns for CoT and TIR."""
    metrics = [m for m in _metric_names(rows) if _mode_metric(m)]
    bases = sorted(dict.fromkeys(_mode_metric(m)[1] for m in metrics), key=_metric_rank)
    out = []
    for r in rows:
        for mode in ("cot", "tir"):
            vals = {b: r.get(b if mode == "cot" else f"tir_{b}") for b in bases}
            if any(v is not None for v in vals.values()):
                out.append({**({"generation": r["generation"]} if multi_generation(rows) else {}),
                            "round": r["round"], **({"phase": r["phase"]} if r.get("phase") else {}), "mode": mode,
                            **vals})
    return out, bases


def multi_generation(rows: list[dict]) -> bool:
    return any((r.get("generation") or 1) > 1 for r in rows)


def round_label(r: dict, rows: list[dict]) -> str:
    """'3' in a one-generation run, 'g2 r3' when there are several; 'grpo' for the RL row."""
    name = "grpo" if r.get("phase") == "grpo" else str(r["round"])
    return f"g{r.get('generation') or 1} {name}" if multi_generation(rows) else name


def plot_rounds(rows: list[dict], path: Path) -> None:
    """One panel per reasoning mode: greedy, maj@n, rm@n, pass@n per round, with standard errors."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table, bases = by_mode(rows)
    modes = [m for m in ("cot", "tir") if any(t["mode"] == m for t in table)] or ["cot"]
    fig, axes = plt.subplots(1, len(modes), figsize=(5.2 * len(modes), 4.0), dpi=110, squeeze=False)
    xs = list(range(len(rows)))   # in run order: generations one after another
    for ax, mode in zip(axes[0], modes):
        for b in bases:
            if b == "sample_acc" or b.startswith("rm_maj@"):
                continue
            name = b if mode == "cot" else f"tir_{b}"
            ys = [r.get(name) for r in rows]
            if all(y is None for y in ys):
                continue
            err = [r.get(f"{name}_se") or 0 for r in rows]
            ax.errorbar(xs, [y if y is not None else float("nan") for y in ys], yerr=err, marker="o",
                        capsize=3, label=b)
        for x, r in zip(xs, rows):   # a new generation starts from a new base: mark it
            if x and r["round"] == 0:
                ax.axvline(x - 0.5, color="grey", linestyle=":", linewidth=1)
        ax.set_title({"cot": "CoT", "tir": "TIR"}[mode])
        ax.set_xlabel("round (0 = base model" + ("; g = generation)" if multi_generation(rows) else ")"))
        ax.set_ylabel("held-out accuracy")
        ax.set_xticks(xs, [round_label(r, rows) for r in rows])
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_run_report(run_dir: str | Path) -> Path:
    """runs/<run>/report.md and accuracy.png from summary.json and each round's evaluation."""
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = summary["rounds"]
    plot_rounds(rows, run_dir / "accuracy.png")
    table, bases = by_mode(rows)
    mode_cols = [c for c in ("generation", "round", "phase", "mode") if any(t.get(c) is not None for t in table)] + bases
    run_cols = [*(["generation"] if multi_generation(rows) else []), "round", "phase",
                *[m for m in _metric_names(rows) if not _mode_metric(m) and m not in RUN_COLUMNS],
                *RUN_COLUMNS]  # phase: "grpo" for the RL row
    text = [f"# Run {summary['run']}", "",
            "Held-out accuracy per round and reasoning mode (round 0 = bootstrap model); standard errors in "
            "summary.json.", "", markdown_table(table, mode_cols), "",
            "![accuracy per round](accuracy.png)", "", "## Training, reward model and grading", "",
            markdown_table(rows, [c for c in run_cols if any(r.get(c) is not None for r in rows)]), ""]
    by_op = [{"round": round_label(r, rows), "op": op, **scores} for r in rows for op, scores in r.get("by_op", {}).items()]
    if by_op:
        text += ["## Greedy accuracy per operation, CoT and TIR", "",
                 markdown_table(by_op, [c for c in ("round", "op", "count", "greedy", "tir_greedy")
                                        if any(c in r for r in by_op)]), ""]
    text += comparisons_section(run_dir, rows)
    for r in rows:
        rep = run_dir / r["eval_dir"] / "report.md" if r.get("eval_dir") else None
        if rep is not None and rep.exists():
            text += [f"- round {round_label(r, rows)}: [{rep.relative_to(run_dir)}]({rep.relative_to(run_dir)})"]
    path = run_dir / "report.md"
    path.write_text("\n".join(text) + "\n")
    return path


def comparisons(run_dir: Path, rows: list[dict]) -> list[dict]:
    """The run's paired comparisons (tasks/compare.py), each with its bootstrap 95% interval:
    rm@n against maj@n in every round with a reward model, GRPO against the round it started from,
    and, with several generations, each base and each last round against the previous generation's."""
    from tasks.compare import compare

    def evals(r):
        return [run_dir / r["eval_dir"]] if r.get("eval_dir") else None

    out = []

    def add(what: str, a_row: dict, b_row: dict, metric: str, mode: str, metric_b: str | None = None):
        if not (evals(a_row) and evals(b_row)):
            return
        try:   # an evaluation without that metric (no RM, no TIR) or from an older version: no row
            c = compare(evals(a_row), evals(b_row), metric=metric, mode=mode, metric_b=metric_b)
        except (FileNotFoundError, KeyError):
            return
        out.append({"comparison": what, "mode": mode, **c})

    modes = [m for m in ("cot", "tir") if any(("tir_greedy" if m == "tir" else "greedy") in r for r in rows)]
    for r in rows:
        if r["round"] and r.get("rm_pair_acc") is not None or r.get("phase") == "grpo":
            for mode in modes:
                add(f"rm vs maj, round {round_label(r, rows)}", r, r, "maj", mode, metric_b="rm")
    grpo = [r for r in rows if r.get("phase") == "grpo"]
    if grpo:
        before = [r for r in rows if r.get("phase") != "grpo" and r.get("generation") == grpo[0].get("generation")]
        for mode in modes:
            add("GRPO vs the last SFT round", before[-1], grpo[0], "greedy", mode)
    gens = sorted({r.get("generation") or 1 for r in rows})
    for g_prev, g in zip(gens, gens[1:]):
        prev = [r for r in rows if (r.get("generation") or 1) == g_prev and r.get("phase") != "grpo"]
        this = [r for r in rows if (r.get("generation") or 1) == g and r.get("phase") != "grpo"]
        for mode in modes:
            for metric in ("greedy", "maj"):
                add(f"base v{g} vs base v{g_prev}", prev[0], this[0], metric, mode)
                if len(this) > 1:
                    add(f"generation {g} vs {g_prev}, last round", prev[-1], this[-1], metric, mode)
    return out


def comparisons_section(run_dir: Path, rows: list[dict]) -> list[str]:
    from tasks.compare import interval, verdict

    found = comparisons(run_dir, rows)
    if not found:
        return []
    table = [{"comparison": c["comparison"], "mode": c["mode"], "metric": c["metric"], "a": c["a"], "b": c["b"],
              "b - a [95% CI]": interval(c), "reading": verdict(c), "problems": c["problems"]} for c in found]
    return ["## Paired comparisons", "",
            "b - a per held-out problem, with the percentile-bootstrap 95% interval over problems "
            "(2,000 resamples; tasks/compare.py). rm vs maj: a = maj@n, b = rm@n of the same evaluation.", "",
            markdown_table(table, list(table[0])), ""]
