"""Operations: a local Prefect server, and scheduled iterations of a run.

    selfimprove server start|stop|status      # SQLite under the project's Prefect home, 127.0.0.1
    selfimprove serve configs/tiny.yaml --every 6h

When the local server runs, the CLI and flows report to it (runs show in its UI); otherwise
Prefect's temporary server is used for the duration of one command.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prefect import flow

DEFAULT_PORT = 4200


def _state_file() -> Path:
    return Path(os.environ["PREFECT_HOME"]) / "server.json"


def server_url(port: int = DEFAULT_PORT) -> str:
    return f"http://127.0.0.1:{port}/api"


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def running_server() -> dict | None:
    """{"pid", "port", "api_url"} of our local server when it answers, else None."""
    path = _state_file()
    if not path.exists():
        return None
    info = json.loads(path.read_text())
    return info if healthy(info["api_url"]) else None


def start_server(port: int = DEFAULT_PORT, wait_s: float = 180.0) -> dict:
    """Start `prefect server start` in the background; wait until it answers."""
    if info := running_server():
        return info
    home = Path(os.environ["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "a")
    env = {**os.environ, "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_SERVER_API_PORT": str(port)}
    env.pop("PREFECT_API_URL", None)  # the server itself must not point at another API
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    info = {"pid": proc.pid, "port": port, "api_url": server_url(port)}
    deadline = time.time() + wait_s
    while not healthy(info["api_url"]):
        if proc.poll() is not None:
            raise RuntimeError(f"prefect server exited with {proc.returncode}; see {home / 'server.log'}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGTERM)
            raise TimeoutError(f"prefect server did not answer within {wait_s:.0f} s; see {home / 'server.log'}")
        time.sleep(1)
    _state_file().write_text(json.dumps(info))
    return info


def stop_server() -> bool:
    path = _state_file()
    if not path.exists():
        return False
    info = json.loads(path.read_text())
    try:
        os.killpg(info["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    path.unlink()
    return True


def pause_schedule(deployment: str) -> None:
    """Pause a served deployment ("flow/deployment"); nothing to do if it was never created.

    `flow.serve(pause_on_shutdown=True)` pauses on Ctrl-C, but on SIGTERM Prefect 3.8.8's runner
    exits before its pause request is sent: call this after `serve` returns, however it ends.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.pause_deployment(client.read_deployment_by_name(deployment).id)
        except ObjectNotFound:
            pass


@flow(name="scheduled-iteration", flow_run_name="{run_name}-next")
def scheduled_iteration(config: str, run_name: str, home: str) -> dict:
    """One scheduled run: continue the run folder by one round (all earlier stages come from cache)."""
    from flows.hygiene import run_lock
    from flows.self_improve import run_loop
    from tasks.config import load_config

    run_dir = Path(home) / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):  # a `selfimprove run` on the same folder fails this run at once
        cfg = load_config(config, {"run.rounds": rounds_done(run_dir) + 1})
        try:
            return run_loop(cfg, str(run_dir), run_name)
        finally:
            stop_engines()


def stop_engines() -> None:
    """Stop this process's vLLM engine and its processes.

    `serve` runs each flow run in a multiprocessing child, which joins its children before it
    exits: a vLLM engine process left running keeps the run's process alive and, with a limit of
    one run, stops every later scheduled run from starting.
    """
    import multiprocessing

    from tasks.engine import shutdown

    shutdown()
    for proc in multiprocessing.active_children():
        if proc.name.startswith("EngineCore"):  # vLLM's engine process (its workers follow it)
            proc.terminate()
            proc.join(30)


def rounds_done(run_dir: Path) -> int:
    """The last round whose evaluation finished in this folder; -1 when none did.

    Not summary.json: every run rewrites it from round 0, so a run that failed in round 1 would
    leave it at round 0 and its retry would redo round 1 instead of adding the next round.
    """
    evaluated = run_dir.glob("round-*/*-evaluate/manifest.json")
    return max((int(p.parent.parent.name.removeprefix("round-")) for p in evaluated), default=-1)
