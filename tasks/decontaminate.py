"""Decontamination: drop training items that overlap an evaluation item (the Qwen2.5-Math rule).

    from tasks.decontaminate import decontaminate_files
    counts = decontaminate_files(["train.jsonl"], ["../shared/data/benchmarks"], "out/", cfg.decontaminate)

The rule. Both texts are normalised (`normalize`: case, punctuation and symbols, whitespace, LaTeX
noise) and split into word tokens; a CJK character is a token of its own. A training item is a
*candidate* for an eval item when they share a word n-gram (n = cfg.ngram, 13). A text shorter
than n tokens is one gram, the whole text. Texts of at most 2n tokens are also keyed by their
skeleton (the whole text with every number masked), because there one changed number can touch
every n-gram: "divided by 8" vs "divided by 9" in a 20-token problem shares no 13-gram. A
candidate is *contaminated* when its LCS ratio exceeds cfg.lcs_ratio (0.6):

    ratio = LCS(window, eval) / min(len(window), len(eval))

LCS is the longest common subsequence of the two token lists; `window` is the training text cut
to the span aligned with the eval item at the first shared n-gram, widened on each side by a
quarter of the eval item's length (a skeleton match uses the whole text). For two questions of
similar length the window is the whole training text, so the ratio is LCS / the shorter length;
for a long training text (a solution restating an eval question) it is the share of the eval item
found in the aligned part, so common words scattered over a long text cannot add up to a match.
One changed number in an L-token problem gives (L-1)/L. mode "any-ngram" flags every candidate
(the ratio is still recorded). Not caught: a short eval text (< n tokens) inside a longer
training text, and a short problem with a changed *word* in its middle.

Scaling. The index maps the hash of each eval n-gram to the eval items that contain it (a dict:
one lookup per training gram, whatever the number of eval items). LCS runs only on candidates and
is bit-parallel (one big-int step per token). Training files are streamed in chunks, with a
bounded number of chunks in flight, to `cfg.workers` forked processes that share the index
copy-on-write (gc.freeze keeps the pages clean); kept rows are written in input order.

Web scale (not built here). The same per-chunk function (`_check_chunk`) is the unit of work: a
Ray Data `map_batches` or Dask `bag.map_partitions` job over the corpus shards, with the eval rows
broadcast (a few MB; `ray.put` / `client.scatter(broadcast=True)`) and the index rebuilt once per
worker (seconds; pickling an NgramIndex does exactly that, since gram hashes are only stable within
one process tree), writing per-shard kept / contaminated files and summing the per-shard reports.

Outputs of `decontaminate_files` (each written under a temp name, then renamed; report.json last):
kept.jsonl (the clean input rows, unchanged), contaminated.parquet (item_id, source_file, eval_set,
eval_id, ngram, lcs_ratio: one row per contaminated (item, eval item) pair), report.json (counts).
"""
from __future__ import annotations

import gc
import json
import multiprocessing as mp
import os
import re
import unicodedata
from collections import deque
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from tasks.common import write_json_atomic
from tasks.config import DecontaminateConfig
from tasks.sources import iter_records, load_eval_sets, parse_line, question_field, row_id

CHUNK_ROWS = 1000

# ---------------------------------------------------------------------------------------------
# Normalisation

_LATEX_DROP = re.compile(
    r"\\(?:left|right|[bB]igg?[lr]?|displaystyle|textstyle|limits|nolimits|q?quad"
    r"|text|textbf|textit|textrm|mathrm|mathbf|mathit|mathsf|mbox|operatorname)(?![a-zA-Z])"
    r"|\\[,!;: >]|\\\\|\$"
)
_FRAC = re.compile(r"\\[dt](frac|binom)(?![a-zA-Z])")
_DIGIT_COMMA = re.compile(r"(?<=\d)(?:,|\{,\}|\\,)(?=\d{3}(?!\d))")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+")


def normalize(text: str) -> str:
    """Lower-case word and number tokens joined by single spaces: LaTeX spacing and sizing
    commands, $ and formatting wrappers dropped, \\dfrac -> frac, 1,400 / 1{,}400 / 1\\,400 -> 1400,
    punctuation and symbols removed, each CJK character a token."""
    text = unicodedata.normalize("NFKC", text)
    text = _DIGIT_COMMA.sub("", _FRAC.sub(r"\\\1", text))
    text = _LATEX_DROP.sub(" ", text).lower()
    text = _CJK.sub(r" \g<0> ", text)
    return " ".join(_TOKEN.findall(text))


# ---------------------------------------------------------------------------------------------
# LCS

def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel
    (Allison-Dix / Hyyro): one big-int step per token of the shorter list."""
    if len(a) < len(b):
        a, b = b, a
    masks: dict[Any, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = v = (1 << len(a)) - 1
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def lcs_ratio(a: list, b: list) -> float:
    """LCS / the shorter length (0.0 when either is empty)."""
    return lcs_length(a, b) / min(len(a), len(b)) if a and b else 0.0


# ---------------------------------------------------------------------------------------------
# The index

class NgramIndex:
    """hash(normalised word n-gram) -> the eval items containing it.

    State that outlives a call: built once, read by every training chunk (and forked workers).
    Pickling rebuilds it from the eval texts, because the hashes are Python's own (per process).
    """

    def __init__(self, n: int = 13):
        self.n = n
        self.items: list[tuple[str, str]] = []   # eval index -> (eval_set, eval_id)
        self.texts: list[str] = []               # eval index -> normalised text
        self.grams: dict[int, int | tuple[int, ...]] = {}

    @classmethod
    def build(cls, eval_sets: dict[str, list[dict]], n: int = 13) -> NgramIndex:
        """From {name: problem rows} (rows with id and question, as `load_eval_sets` returns)."""
        index = cls(n)
        for name, rows in eval_sets.items():
            for row in rows:
                index.add(name, str(row["id"]), row["question"])
        return index

    @classmethod
    def from_specs(cls, specs: list[str], n: int = 13) -> NgramIndex:
        return cls.build(load_eval_sets(specs), n)

    def add(self, eval_set: str, eval_id: str, text: str, normalized: bool = False) -> None:
        tokens = (text if normalized else normalize(text)).split()
        if not tokens:
            return
        k = len(self.items)
        self.items.append((eval_set, eval_id))
        self.texts.append(" ".join(tokens))
        for key in {key for _, key in _keys(tokens, self.n)}:
            have = self.grams.get(key)
            self.grams[key] = k if have is None else (have if isinstance(have, tuple) else (have,)) + (k,)

    def lookup(self, gram: str) -> list[tuple[str, str]]:
        """(eval_set, eval_id) of the eval items containing this gram (any text; normalised here)."""
        tokens = normalize(gram).split()
        hits = self.grams.get(hash(tuple(tokens)), ())
        return [self.items[k] for k in ((hits,) if isinstance(hits, int) else hits)
                if f" {' '.join(tokens)} " in f" {self.texts[k]} "]

    def sizes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, _ in self.items:
            out[name] = out.get(name, 0) + 1
        return out

    def __len__(self) -> int:
        return len(self.items)

    def __reduce__(self):
        return _rebuild, (self.n, self.items, self.texts)


def _rebuild(n: int, items: list, texts: list) -> NgramIndex:
    index = NgramIndex(n)
    for (name, eval_id), text in zip(items, texts):
        index.add(name, eval_id, text, normalized=True)
    return index


def _keys(tokens: list[str], n: int) -> Iterator[tuple[int, int]]:
    """(position, hash) of each n-gram (a text shorter than n is one gram, the whole text), then
    for a text of at most 2n tokens (where one changed token can touch every n-gram) the hash of
    its skeleton, the whole text with numbers masked, at position -1."""
    if len(tokens) < n:
        yield 0, hash(tuple(tokens))
    else:
        yield from enumerate(map(hash, zip(*[tokens[i:] for i in range(n)])))
    if len(tokens) <= 2 * n:
        yield -1, hash(_skeleton(tokens))


def _skeleton(tokens: list[str]) -> tuple[str, ...]:
    return ("#skeleton",) + tuple("#" if t[0].isdigit() else t for t in tokens)


# ---------------------------------------------------------------------------------------------
# Matching one text

def match_text(text: str, index: NgramIndex, lcs_threshold: float,
               mode: str = "ngram+lcs") -> list[tuple[int, str, float]]:
    """(eval index, matched n-gram, ratio) for every eval item this text is contaminated by.
    A skeleton match reports the masked text ("what is # plus #") as its n-gram."""
    tokens = normalize(text).split()
    if not tokens:
        return []
    first: dict[int, int] = {}  # eval index -> position of the first shared gram in tokens
    grams = index.grams
    for pos, key in _keys(tokens, index.n):
        hit = grams.get(key)
        if hit is None:
            continue
        for k in (hit,) if isinstance(hit, int) else hit:
            first.setdefault(k, pos)
    out = []
    for k, pos in first.items():
        if pos < 0:
            gram, ratio = _skeleton_ratio(tokens, index.texts[k])
        else:
            gram = " ".join(tokens[pos:pos + index.n])
            ratio = _aligned_ratio(tokens, pos, gram, index.texts[k])
        if ratio is not None and (mode == "any-ngram" or ratio > lcs_threshold):
            out.append((k, gram, round(ratio, 4)))
    return out


def _aligned_ratio(tokens: list[str], pos: int, gram: str, eval_text: str) -> float | None:
    """LCS ratio of the eval text and the training window aligned on the shared gram;
    None when the gram is not in the eval text after all (a hash collision)."""
    at = f" {eval_text} ".find(f" {gram} ")
    if at < 0:
        return None
    eval_tokens = eval_text.split()
    q = eval_text[:at].count(" ")  # the gram's token position in the eval text
    slack = len(eval_tokens) // 4
    start = max(0, pos - q - slack)
    window = tokens[start:pos - q + len(eval_tokens) + slack]
    return lcs_ratio(window, eval_tokens)


def _skeleton_ratio(tokens: list[str], eval_text: str) -> tuple[str, float | None]:
    eval_tokens = eval_text.split()
    skeleton = _skeleton(tokens)
    if skeleton != _skeleton(eval_tokens):
        return "", None
    return " ".join(skeleton[1:]), lcs_ratio(tokens, eval_tokens)


def find_contamination(train_items: Iterable[dict], index: NgramIndex, cfg: DecontaminateConfig,
                       text_fields: tuple[str, ...] = ("question",)) -> list[dict]:
    """One record per contaminated (item, eval item) pair: item_id (the item's id, else its
    position), eval_set, eval_id, ngram, lcs_ratio. Serial; `decontaminate_files` parallelises."""
    out = []
    for i, item in enumerate(train_items):
        text = item_text(item, text_fields)
        for k, gram, ratio in match_text(text or "", index, cfg.lcs_ratio, cfg.mode):
            eval_set, eval_id = index.items[k]
            out.append({"item_id": row_id(item, i), "eval_set": eval_set, "eval_id": eval_id,
                        "ngram": gram, "lcs_ratio": ratio})
    return out


def item_text(rec: dict, text_fields: tuple[str, ...]) -> str | None:
    """The fields to check, joined by newlines. "question" also finds `problem`; a list field
    (several solutions, chat messages) contributes each string or each message's content."""
    parts = []
    for name in text_fields:
        value = rec.get(question_field(rec) if name == "question" else name)
        if isinstance(value, list):
            value = "\n".join(v.get("content", "") if isinstance(v, dict) else str(v) for v in value)
        if isinstance(value, str) and value.strip():
            parts.append(value)
    return "\n".join(parts) or None


# ---------------------------------------------------------------------------------------------
# Streaming over files, in parallel

_FORKED: dict[str, Any] = {}  # the index, set in the parent just before the workers fork


def _check_chunk(chunk: list[tuple[int, Any]], index: NgramIndex, rule: tuple) -> list[tuple]:
    """For each (line, raw JSON line or dict): ("bad", field, reason) or ("ok", item_id, hits)."""
    lcs_threshold, mode, text_fields = rule
    out = []
    for line, payload in chunk:
        rec, error = parse_line(payload) if isinstance(payload, str) else (payload, None)
        if error:
            out.append(("bad", "-", error))
            continue
        text = item_text(rec, text_fields)
        if text is None:
            out.append(("bad", "/".join(text_fields), "missing or empty"))
            continue
        out.append(("ok", row_id(rec, line), match_text(text, index, lcs_threshold, mode)))
    return out


def _check_forked(chunk, rule):
    return _check_chunk(chunk, _FORKED["index"], rule)


def _worker_signals() -> None:
    """A worker dies of SIGTERM and leaves Ctrl-C to its parent. It is forked from a flow whose
    Python-level handlers (Prefect's, ours) it would otherwise inherit, and a SIGTERM that reaches
    such a child while it is still starting is dropped by the interpreter: Pool.terminate() then
    waits for it forever (seen: a synthesize stage hung 15 minutes)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _scan(chunks: Iterable[list], index: NgramIndex, rule: tuple, workers: int) -> Iterator[tuple[list, list]]:
    """(chunk, results) in input order, with at most 2 * workers + 1 chunks in memory."""
    if workers <= 1:
        for chunk in chunks:
            yield chunk, _check_chunk(chunk, index, rule)
        return
    _FORKED["index"] = index
    gc.freeze()  # keep the index's pages shared: the children's GC will not touch them
    pool = mp.get_context("fork").Pool(workers, initializer=_worker_signals)
    finished = False
    try:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(_check_forked, (chunk, rule))))
            if len(pending) > 2 * workers:
                chunk, result = pending.popleft()
                yield chunk, result.get()
        while pending:
            chunk, result = pending.popleft()
            yield chunk, result.get()
        finished = True
    finally:
        # Done: the workers read the end-of-work mark and exit, no signal needed. Stopped early
        # (an error, a consumer that stopped reading): terminate them.
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()
        _FORKED.clear()
        gc.unfreeze()


def _file_chunks(path: Path) -> Iterator[list[tuple[int, Any]]]:
    """Chunks of (line, raw line | record); JSONL lines stay raw so kept rows are copied byte for
    byte and JSON parsing happens in the workers."""
    rows = _raw_rows(path)
    while chunk := list(islice(rows, CHUNK_ROWS)):
        yield chunk


def _raw_rows(path: Path) -> Iterator[tuple[int, Any]]:
    if path.suffix == ".parquet":
        yield from ((line, rec) for line, rec, _ in iter_records(path))
        return
    with open(path, encoding="utf-8") as f:
        yield from ((line, text) for line, text in enumerate(f, 1) if text.strip())


# ---------------------------------------------------------------------------------------------
# Entry points: files (the CLI) and rows in memory (the problems / SFT stages)

def decontaminate_files(train_files: list[str], eval_specs: list[str] | NgramIndex, out_dir: str | Path,
                        cfg: DecontaminateConfig, text_fields: tuple[str, ...] = ("question",),
                        on_bad: Literal["skip", "error"] = "skip") -> dict:
    """Decontaminate JSONL / Parquet training files against the eval sets (benchmark folders or
    files, see `load_eval_sets`, or a built NgramIndex); write kept.jsonl, contaminated.parquet and
    report.json into out_dir and return the report. Bad rows are not kept; they are listed in the
    report (the first 100; `bad` counts all), or raise ValueError with on_bad="error"."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").unlink(missing_ok=True)  # a stale report would vouch for new files
    index = eval_specs if isinstance(eval_specs, NgramIndex) else NgramIndex.from_specs(list(eval_specs), cfg.ngram)
    rule = (cfg.lcs_ratio, cfg.mode, tuple(text_fields))
    tally = _Tally(index, on_bad)
    tmp = {name: out_dir / f"{name}.tmp-{os.getpid()}" for name in ("kept.jsonl", "contaminated.parquet")}
    try:
        with open(tmp["kept.jsonl"], "w", encoding="utf-8") as kept:
            for path in map(Path, train_files):
                tally.counts(str(path))
                for chunk, results in _scan(_file_chunks(path), index, rule, cfg.workers):
                    for (line, payload), result in zip(chunk, results):
                        if tally.add(str(path), line, result):
                            kept.write(_as_line(payload))
        _write_pairs(tally.pairs, tmp["contaminated.parquet"])
        for name, path in tmp.items():
            os.replace(path, out_dir / name)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    report = tally.report(cfg, text_fields)
    write_json_atomic(out_dir / "report.json", report)  # last: its existence means the work completed
    return report


def decontaminate_rows(rows: list[dict], index: NgramIndex, cfg: DecontaminateConfig,
                       text_fields: tuple[str, ...] = ("question",)) -> tuple[list[dict], list[dict]]:
    """(kept rows, contaminated pairs) for rows in memory: problems (text_fields=("question",)) or
    solutions (e.g. ("question", "solution")). A row without text is kept (nothing to match)."""
    rule = (cfg.lcs_ratio, cfg.mode, tuple(text_fields))
    chunks = (list(enumerate(rows[i:i + CHUNK_ROWS], i)) for i in range(0, len(rows), CHUNK_ROWS))
    workers = cfg.workers if len(rows) >= 4 * CHUNK_ROWS else 1
    kept, pairs = [], []
    for chunk, results in _scan(chunks, index, rule, workers):
        for (i, row), result in zip(chunk, results):
            if result[0] == "bad" or not result[2]:
                kept.append(row)
                continue
            for k, gram, ratio in result[2]:
                eval_set, eval_id = index.items[k]
                pairs.append({"item_id": row_id(row, i), "eval_set": eval_set, "eval_id": eval_id,
                              "ngram": gram, "lcs_ratio": ratio})
    return kept, pairs


def _as_line(payload: str | dict) -> str:
    if isinstance(payload, str):
        return payload if payload.endswith("\n") else payload + "\n"
    return json.dumps(payload, ensure_ascii=False, default=str) + "\n"


def _write_pairs(pairs: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema = pa.schema([("item_id", pa.string()), ("source_file", pa.string()), ("eval_set", pa.string()),
                        ("eval_id", pa.string()), ("ngram", pa.string()), ("lcs_ratio", pa.float64())])
    pq.write_table(pa.Table.from_pylist(pairs, schema=schema), path)


class _Tally:
    """Counts, contaminated pairs and bad rows of one decontaminate_files call."""

    def __init__(self, index: NgramIndex, on_bad: str):
        self.index, self.on_bad = index, on_bad
        self.files: dict[str, dict[str, int]] = {}
        self.pairs: list[dict] = []
        self.bad: list[dict] = []
        self.flagged: dict[str, set] = {name: set() for name in index.sizes()}

    def counts(self, path: str) -> dict[str, int]:
        return self.files.setdefault(path, {"items": 0, "kept": 0, "contaminated": 0, "bad": 0})

    def add(self, path: str, line: int, result: tuple) -> bool:
        """Record one row's result; True when the row is kept."""
        counts = self.counts(path)
        if result[0] == "bad":
            if self.on_bad == "error":
                raise ValueError(f"{path}:{line}: field {result[1]!r}: {result[2]}")
            self.bad.append({"file": path, "line": line, "field": result[1], "reason": result[2]})
            counts["bad"] += 1
            return False
        _, item_id, hits = result
        counts["items"] += 1
        counts["contaminated" if hits else "kept"] += 1
        for k, gram, ratio in hits:
            eval_set, eval_id = self.index.items[k]
            self.flagged[eval_set].add((path, item_id))
            self.pairs.append({"item_id": item_id, "source_file": path, "eval_set": eval_set,
                               "eval_id": eval_id, "ngram": gram, "lcs_ratio": ratio})
        return not hits

    def report(self, cfg: DecontaminateConfig, text_fields: tuple[str, ...]) -> dict:
        total = {key: sum(c[key] for c in self.files.values()) for key in ("items", "kept", "contaminated", "bad")}
        eval_hit = {name: set() for name in self.flagged}
        for pair in self.pairs:
            eval_hit[pair["eval_set"]].add(pair["eval_id"])
        return {
            **total, "pairs": len(self.pairs),
            "per_eval_set": {name: {"eval_items": size, "flagged_items": len(self.flagged[name]),
                                    "eval_items_matched": len(eval_hit[name])}
                             for name, size in self.index.sizes().items()},
            "files": self.files, "bad_rows": self.bad[:100],
            "rule": {"ngram": cfg.ngram, "lcs_ratio": cfg.lcs_ratio, "mode": cfg.mode,
                     "text_fields": list(text_fields)},
        }


# ---------------------------------------------------------------------------------------------
# Frames of a stage (problems, select)

@lru_cache(maxsize=2)
def eval_index(specs: tuple[str, ...], n: int):
    """The n-gram index over the eval sets, built once per process."""
    missing = [s for s in specs if not Path(s).exists()]
    if missing:
        raise FileNotFoundError(f"decontaminate.eval_sets: not found: {', '.join(missing)}")
    return NgramIndex.from_specs(list(specs), n)


def decontaminate_frame(df: pd.DataFrame, cfg: DecontaminateConfig, text_fields: tuple[str, ...],
                        out_dir: Path) -> tuple[pd.DataFrame, dict]:
    """Drop rows matching an eval item; write contaminated.parquet; counts per eval set."""
    import pandas as pd

    if not cfg.enabled or not cfg.eval_sets or df.empty:
        return df, {"contaminated": 0}
    rows = df.to_dict("records")
    kept, pairs = decontaminate_rows(rows, eval_index(tuple(cfg.eval_sets), cfg.ngram), cfg, text_fields)
    pd.DataFrame(pairs, columns=["item_id", "eval_set", "eval_id", "ngram", "lcs_ratio"]).to_parquet(
        out_dir / "contaminated.parquet", index=False)
    removed = {p["item_id"] for p in pairs}
    per_set = pd.Series([p["eval_set"] for p in pairs], dtype=str).value_counts().to_dict()
    return pd.DataFrame(kept, columns=df.columns), {"contaminated": len(removed),
                                                    **{f"contaminated_{k}": int(v) for k, v in per_set.items()}}
