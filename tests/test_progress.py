"""Stage progress: counts, chunks, and a Prefect progress artifact inside a task run."""
from __future__ import annotations

from pathlib import Path

from tasks.progress import StageProgress, chunks


def test_chunks_cover_every_index_once():
    for n, min_size in ((0, 5), (7, 5), (1000, 64), (1001, 256), (10, 1)):
        parts = chunks(n, min_size)
        assert [i for p in parts for i in p] == list(range(n))
        assert all(len(p) >= min(min_size, n) for p in parts[:-1])
    assert len(chunks(10_000, 256)) == 10 and len(chunks(1000, 256)) == 4


def test_progress_outside_prefect_counts_without_artifact():
    with StageProgress("x", 4) as p:
        p.advance(3)
        assert p.fraction == 0.75 and p._sink is None
        p.update(9)
        assert p.fraction == 1.0


def test_progress_artifact_inside_a_task_run(prefect_api):
    """flows/ wires StageProgress to a Prefect progress artifact on the task run, moved to 100%;
    tasks/ itself never imports Prefect."""
    import ast

    from prefect import flow, task

    from flows.stages import _prefect_progress
    from tasks.progress import reporting

    @task
    def long_stage():
        with reporting(_prefect_progress):
            with StageProgress("sample: problems", 10, every_s=0) as p:
                for _ in range(10):
                    p.advance()

    @flow
    def f():
        long_stage()

    f()
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        art = client.read_artifacts()
    progress = [a for a in art if a.type == "progress" and "sample: problems" in (a.description or "")]
    assert len(progress) == 1
    assert progress[0].data == 100.0 and "10/10" in progress[0].description
    tasks_dir = Path(__file__).resolve().parent.parent / "tasks"
    for source in tasks_dir.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "prefect" for n in names), f"{source.name} imports prefect"
