"""Stage folders are atomic: a manifest means finished; a failed stage leaves nothing taken for done."""
from __future__ import annotations

import json

import pytest

from tasks.common import MANIFEST, finished, read_manifest, run_stage


def test_manifest_written_with_digests(tmp_path):
    def body(d):
        (d / "a.txt").write_text("hello")
        return {"rows": 1}

    r = run_stage(tmp_path / "01-x", "x", "key1", {"in": "abc"}, body)
    m = json.loads((tmp_path / "01-x" / MANIFEST).read_text())
    assert m["key"] == "key1" and m["counts"] == {"rows": 1} and "a.txt" in m["files"]
    assert r.digest == m["digest"] and r.counts["rows"] == 1


def test_failed_stage_leaves_no_folder_and_keeps_previous(tmp_path):
    run_stage(tmp_path / "s", "x", "k1", {}, lambda d: (d / "f").write_text("old") and {})

    def boom(d):
        (d / "f").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage(tmp_path / "s", "x", "k2", {}, boom)
    assert (tmp_path / "s" / "f").read_text() == "old"      # finished work is not lost
    assert read_manifest(tmp_path / "s")["key"] == "k1"
    assert not list(tmp_path.glob("s.tmp-*"))


def test_finished_stage_is_not_redone_and_stale_tmp_removed(tmp_path):
    calls = []
    body = lambda d: calls.append(1) or {}
    (tmp_path / "s.tmp-99999").mkdir(parents=True)           # left by a killed attempt
    run_stage(tmp_path / "s", "x", "k", {}, body)
    run_stage(tmp_path / "s", "x", "k", {}, body)
    assert calls == [1]
    assert not (tmp_path / "s.tmp-99999").exists()
    assert finished(tmp_path / "s", "other") is None


def test_corrupt_manifest_names_path(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match=str(tmp_path / "s")):
        read_manifest(tmp_path / "s")
