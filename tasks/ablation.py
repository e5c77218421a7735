"""The ablation report: each variant against the full loop, per round, seeds pooled.

    from tasks.ablation import write_ablation_report
    write_ablation_report("runs/tiny-ablate")     # report.md + ablation.json from each run's summary

Reads runs/<name>/<variant>/seed-<s>/summary.json (flows/ablate.py's layout). Per variant and
round: the mean over seeds of greedy, maj@n, rm@n (CoT) and TIR greedy; for every variant but
`full`, the difference to the full loop on the same rounds, paired per held-out problem with the
seeds pooled per problem, and its bootstrap 95% interval (tasks/compare.py). Only seeds that both
the variant and the full loop have finished are compared.
"""
from __future__ import annotations

import json
from pathlib import Path

from tasks.common import write_json_atomic
from tasks.report import markdown_table

COMPARED = (("greedy", "cot"), ("maj", "cot"), ("greedy", "tir"))


def finished_runs(root: Path) -> dict[str, dict[int, dict]]:
    """{variant: {seed: summary}} for every run that has a summary."""
    out: dict[str, dict[int, dict]] = {}
    for path in sorted(Path(root).glob("*/seed-*/summary.json")):
        variant, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed-"))
        out.setdefault(variant, {})[seed] = json.loads(path.read_text())
    return out


def _rows_by_round(summary: dict) -> dict[tuple, dict]:
    return {(r.get("generation") or 1, r["round"], r.get("phase")): r for r in summary["rounds"]}


def ablation_table(root: Path) -> list[dict]:
    from tasks.compare import compare

    root = Path(root)
    runs = finished_runs(root)
    full = {s: _rows_by_round(summary) for s, summary in runs.get("full", {}).items()}
    table = []
    for variant in ["full", *sorted(v for v in runs if v != "full")]:
        seeds = runs[variant]
        by_seed = {s: _rows_by_round(summary) for s, summary in seeds.items()}
        rounds = sorted(set.intersection(*(set(r) for r in by_seed.values())), key=lambda k: (k[0], k[1], k[2] or ""))
        for key in rounds:
            rows = [by_seed[s][key] for s in sorted(by_seed)]
            n = next((m.split("@")[1] for m in rows[0] if m.startswith("maj@")), None)
            entry = {"variant": variant, "generation": key[0], "round": key[1] if not key[2] else key[2],
                     "seeds": len(rows)}
            for label, metric in (("greedy", "greedy"), (f"maj@{n}", f"maj@{n}"), (f"rm@{n}", f"rm@{n}"),
                                  ("tir_greedy", "tir_greedy")):
                values = [r[metric] for r in rows if r.get(metric) is not None]
                entry[label.replace(f"@{n}", "@n")] = round(sum(values) / len(values), 4) if values else None
            if variant != "full":
                both = sorted(s for s in seeds if key in full.get(s, {}))
                if both:
                    a = [root / "full" / f"seed-{s}" / full[s][key]["eval_dir"] for s in both]
                    b = [root / variant / f"seed-{s}" / by_seed[s][key]["eval_dir"] for s in both]
                    for metric, mode in COMPARED:
                        try:
                            entry[f"{'tir_' if mode == 'tir' else ''}{metric}_vs_full"] = compare(a, b, metric=metric, mode=mode)
                        except (FileNotFoundError, KeyError):
                            pass
            table.append(entry)
    return table


def write_ablation_report(root: str | Path) -> dict:
    """report.md and ablation.json in the ablation folder; returns the JSON."""
    from tasks.compare import interval, verdict

    root = Path(root)
    table = ablation_table(root)
    write_json_atomic(root / "ablation.json", {"runs": {v: sorted(s) for v, s in finished_runs(root).items()},
                                               "table": table})
    cells = []
    for e in table:
        row = {k: e[k] for k in ("variant", "generation", "round", "seeds", "greedy", "maj@n", "rm@n", "tir_greedy")}
        for name in ("greedy_vs_full", "maj_vs_full", "tir_greedy_vs_full"):
            c = e.get(name)
            row[f"{name.replace('_vs_full', '')} - full [95% CI]"] = f"{interval(c)} {verdict(c)}" if c else "-"
        cells.append(row)
    text = ["# Ablation " + root.name, "",
            "Each variant is the full loop with one part switched off (flows/ablate.py). Accuracies are means over "
            "seeds on the held-out set (CoT unless marked TIR); the difference to the full loop is paired per "
            "problem, seeds pooled per problem, with the bootstrap 95% interval (tasks/compare.py). "
            "'lower'/'higher': the interval excludes 0.", ""]
    if cells:
        text += [markdown_table(cells, list(cells[0])), ""]
    (root / "report.md").write_text("\n".join(text) + "\n")
    return {"table": table}
