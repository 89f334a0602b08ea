"""`llmops ui`'s supervisor stops everything it started, whatever those processes do with SIGTERM or with their
process group. Real processes (small Python programs stand in for the Airflow components); the real components
are covered by tests/e2e/test_ui_standalone.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from airflow_provider_llmops import embedded_ui

# A component that starts a child in a process group of its own (as Airflow's task processes do), which
# ignores SIGTERM, and then waits; it writes its own and its child's pid to a file.
COMPONENT = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
        process_group=0,
    )
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()} {child.pid}\\n")
    time.sleep(600)
    """
)

SUPERVISOR = textwrap.dedent(
    """
    import sys
    from airflow_provider_llmops import embedded_ui
    pids, script = sys.argv[1], sys.argv[2]
    embedded_ui.components = lambda airflow, port: {
        name: [sys.executable, script, pids] for name in ("api-server", "scheduler", "dag-processor", "triggerer")
    }
    sys.exit(embedded_ui.run({}, 0, grace=2.0))
    """
)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigterm_to_the_supervisor_stops_every_descendant(tmp_path: Path):
    pids_file, script = tmp_path / "pids", tmp_path / "component.py"
    script.write_text(COMPONENT)
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(pids_file), str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not pids_file.exists() or len(pids_file.read_text().splitlines()) < 4):
        time.sleep(0.2)
    started = [int(p) for line in pids_file.read_text().splitlines() for p in line.split()]
    assert len(started) == 8 and all(_alive(pid) for pid in started)
    assert os.getpgid(started[0]) == supervisor.pid  # the components run in the supervisor's own group

    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0
    assert "received SIGTERM; stopping every component" in output and "[llmops ui] stopped" in output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in started):
        time.sleep(0.2)
    assert [pid for pid in started if _alive(pid)] == []


def test_a_component_that_exits_stops_the_others(tmp_path: Path):
    code = textwrap.dedent(
        """
        import sys
        from airflow_provider_llmops import embedded_ui
        embedded_ui.components = lambda airflow, port: {
            "scheduler": [sys.executable, "-c", "import sys; sys.exit(3)"],
            "api-server": [sys.executable, "-c", "import time; time.sleep(600)"],
        }
        sys.exit(embedded_ui.run({}, 0, grace=2.0))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert "scheduler exited with status 3; stopping the others" in done.stdout


def test_every_component_listens_on_loopback_only():
    commands = embedded_ui.components("airflow", 8123)
    assert commands["api-server"][-4:] == ["--host", "127.0.0.1", "--port", "8123"]
    assert "--skip-serve-logs" in commands["scheduler"] and "--skip-serve-logs" in commands["triggerer"]
