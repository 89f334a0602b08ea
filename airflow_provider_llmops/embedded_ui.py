"""`llmops ui`: the embedded Airflow's components under one supervisor, in one process group, on 127.0.0.1.

`airflow standalone` leaves its scheduler, API server, DAG processor, triggerer and LocalExecutor workers
running when it receives SIGTERM, and its log servers listen on every interface (0.0.0.0/[::]:8793 and 8794).
This supervisor starts the same four components itself:

- `airflow api-server --host 127.0.0.1 --port <port>` (UI and REST API),
- `airflow scheduler --skip-serve-logs` (LocalExecutor; its workers are its children),
- `airflow dag-processor`,
- `airflow triggerer --skip-serve-logs`.

No log server is needed on one machine: task logs are files under `$AIRFLOW_HOME/logs`, which the API server
reads directly. Every component runs in the supervisor's own process group, so SIGTERM, SIGINT or SIGHUP to the
supervisor stops all of them and their descendants (task processes, which put themselves in groups of their own,
included): SIGTERM first, SIGKILL after a grace period. If one component
exits, the others are stopped too and the supervisor exits with that component's status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

GRACE_SECONDS = 20.0


def components(airflow: str, port: int) -> dict[str, list[str]]:
    """The command line of each component (all listeners on 127.0.0.1)."""
    return {
        "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
    }


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def _descendants() -> list[Any]:
    import psutil

    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _stop_group(procs: dict[str, subprocess.Popen[bytes]], grace: float) -> None:
    """Stop every process this supervisor started, directly or not: SIGTERM to the process group and to every
    descendant (task processes put themselves in groups of their own), then SIGKILL to whatever is left after
    `grace` seconds."""
    import psutil

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group signal must not stop the supervisor
    seen = {p.pid: p for p in _descendants()}
    try:
        os.killpg(os.getpgrp(), signal.SIGTERM)
    except ProcessLookupError:
        pass
    for child in list(seen.values()):
        try:
            child.terminate()
        except psutil.Error:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        seen.update({p.pid: p for p in _descendants()})
        if not any(_alive(p) for p in seen.values()):
            break
        time.sleep(0.2)
    seen.update({p.pid: p for p in _descendants()})
    for child in seen.values():
        if _alive(child):
            try:
                child.kill()
            except psutil.Error:
                pass
    for proc in procs.values():
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    signal.signal(signal.SIGTERM, previous)


def _alive(process: Any) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def run(env: dict[str, str], port: int, *, grace: float = GRACE_SECONDS, out=sys.stdout) -> int:
    """Start the components and supervise them until a signal arrives or one of them exits."""
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # a process group of our own (an interactive shell already gives us one)
    bin_dir = Path(sys.executable).parent
    airflow = str(bin_dir / "airflow")
    full_env = {**os.environ, **env, "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_stop)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    status = 0
    try:
        for name, command in components(airflow, port).items():
            procs[name] = subprocess.Popen(command, env=full_env)
            print(f"[llmops ui] started {name} (pid {procs[name].pid})", file=out, flush=True)
        while True:
            for name, proc in procs.items():
                code = proc.poll()
                if code is not None:
                    print(f"[llmops ui] {name} exited with status {code}; stopping the others", file=out, flush=True)
                    status = code or 1
                    raise _Stop(0)
            time.sleep(0.5)
    except _Stop as stop:
        if stop.signum:
            print(
                f"[llmops ui] received {signal.Signals(stop.signum).name}; stopping every component",
                file=out,
                flush=True,
            )
    finally:
        for signum in (signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        _stop_group(procs, grace)
        print("[llmops ui] stopped", file=out, flush=True)
    return status
