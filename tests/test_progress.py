"""Stage progress: counts, chunks, and a Prefect progress artifact inside a task run."""
from __future__ import annotations

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
        assert p.fraction == 0.75 and p._artifact is None
        p.update(9)
        assert p.fraction == 1.0


def test_progress_artifact_inside_a_task_run(prefect_api):
    """Inside a Prefect task run the stage creates a progress artifact and moves it to 100%."""
    from prefect import flow, task

    @task
    def long_stage():
        with StageProgress("sample: problems", 10, every_s=0) as p:
            for _ in range(10):
                p.advance()
            return str(p._artifact)

    @flow
    def f():
        return long_stage()

    artifact_id = f()
    from prefect.client.orchestration import get_client
    with get_client(sync_client=True) as client:
        art = client.read_artifacts()
    progress = [a for a in art if a.type == "progress"]
    assert [str(a.id) for a in progress] == [artifact_id]
    assert progress[0].data == 100.0 and "10/10" in progress[0].description
