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


def test_corrupt_manifest_means_unfinished_and_the_log_names_it(tmp_path, caplog):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / MANIFEST).write_text("{not json")
    assert read_manifest(tmp_path / "s") is None
    assert str(tmp_path / "s" / MANIFEST) in caplog.text and "recomputed" in caplog.text
    calls = []
    run_stage(tmp_path / "s", "x", "k", {}, lambda d: calls.append(1) or {})
    assert calls == [1] and read_manifest(tmp_path / "s")["key"] == "k"


@pytest.mark.parametrize("damage", ["delete", "truncate", "overwrite same size"])
def test_damaged_file_makes_the_stage_unfinished_and_is_named(tmp_path, caplog, damage):
    def body(d):
        (d / "data.bin").write_bytes(b"0123456789")
        (d / "sub").mkdir()
        (d / "sub" / "x.txt").write_text("x")
        return {"rows": 2}

    first = run_stage(tmp_path / "s", "x", "k", {}, body)
    assert finished(tmp_path / "s", "k") == first
    target = tmp_path / "s" / "data.bin"
    if damage == "delete":
        target.unlink()
    elif damage == "truncate":
        target.write_bytes(b"0123")
    else:
        import os
        target.write_bytes(b"9876543210")
        os.utime(target, ns=(1, 1))      # a new mtime: the digest is checked
    assert finished(tmp_path / "s", "k") is None
    assert "data.bin" in caplog.text and "recomputed" in caplog.text
    again = run_stage(tmp_path / "s", "x", "k", {}, body)
    assert target.read_bytes() == b"0123456789" and again.digest == first.digest


def test_unchanged_files_are_not_hashed_again(tmp_path, monkeypatch):
    run_stage(tmp_path / "s", "x", "k", {}, lambda d: (d / "f").write_text("abc") and {})
    import tasks.common as common
    monkeypatch.setattr(common, "sha256_file", lambda p: (_ for _ in ()).throw(AssertionError("hashed")))
    assert finished(tmp_path / "s", "k") is not None      # size and mtime match: no digest needed
