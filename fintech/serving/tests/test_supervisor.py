"""The supervisor on its own, with stand-in processes (a sleeping Python, one that fails at once,
one that ignores SIGTERM): restarts with backoff, log lines, status file, stopping, orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.spine.support import alive, descendants, wait_for

ROOT = Path(__file__).resolve().parents[3]

SLEEPER = ["-c", "import time; time.sleep(600)"]
# A process that starts a grandchild in its own process group, as gunicorn starts its workers.
PARENT_OF_SLEEPER = [
    "-c",
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    "time.sleep(600)",
]
FAILS_AT_ONCE = ["-c", "raise SystemExit(3)"]
IGNORES_SIGTERM = ["-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]


def start_supervisor(
    tmp_path: Path, commands: dict[str, list[str]], **options: float
) -> tuple[subprocess.Popen[str], Path]:
    status = tmp_path / "status.json"
    log = tmp_path / "supervisor.log"
    script = textwrap.dedent(
        f"""
        import logging, sys
        from pathlib import Path
        from fintech.observability.logging import JsonFormatter
        from fintech.serving.supervisor import Supervisor

        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        logging.basicConfig(level=logging.INFO, handlers=[handler])
        options = {options!r}
        supervisor = Supervisor({commands!r}, cwd={str(ROOT)!r}, env=dict(__import__("os").environ),
                                status_path=Path({str(status)!r}), **options)
        sys.exit(supervisor.run())
        """
    )
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, text=True
        )
    return process, status


def read_status(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def running_status(path: Path, *names: str) -> Any:
    def ready():
        status = read_status(path)
        if status and all(status["children"][name]["running"] for name in names):
            return status
        return None

    return wait_for(ready, what=f"{names} running")


def log_lines(tmp_path: Path) -> list[Any]:
    lines = []
    for line in (tmp_path / "supervisor.log").read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


@pytest.fixture
def stop_at_end():
    started: list[subprocess.Popen[str]] = []
    yield started.append
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_a_process_killed_with_sigkill_is_restarted_and_the_exit_is_logged(tmp_path, stop_at_end):
    supervisor, status_path = start_supervisor(tmp_path, {"sleeper": SLEEPER, "other": SLEEPER})
    stop_at_end(supervisor)
    first = running_status(status_path, "sleeper", "other")
    old_pid = first["children"]["sleeper"]["pid"]

    os.kill(old_pid, signal.SIGKILL)

    def restarted():
        status = read_status(status_path)
        sleeper = (status or {}).get("children", {}).get("sleeper", {})
        return status if sleeper.get("running") and sleeper.get("pid") != old_pid else None

    second = wait_for(restarted, what="a new sleeper")
    assert second["children"]["sleeper"]["restarts"] == 1
    assert second["children"]["other"] == first["children"]["other"]  # the others are left alone
    assert alive(second["children"]["sleeper"]["pid"])
    exits = [line for line in log_lines(tmp_path) if line["message"].startswith("process exited")]
    assert len(exits) == 1
    assert exits[0]["level"] == "ERROR"
    assert exits[0]["child"] == "sleeper"
    assert exits[0]["child_pid"] == old_pid
    assert exits[0]["signal"] == "SIGKILL"
    assert exits[0]["exit_code"] is None
    assert exits[0]["restarts"] == 1


def test_a_process_that_keeps_failing_is_restarted_with_a_doubling_backoff(tmp_path, stop_at_end):
    supervisor, _ = start_supervisor(tmp_path, {"failing": FAILS_AT_ONCE}, backoff_initial=0.05, backoff_max=0.2)
    stop_at_end(supervisor)

    def exits():
        found = [line for line in log_lines(tmp_path) if line["message"].startswith("process exited")]
        return found if len(found) >= 5 else None

    found = wait_for(exits, what="five exits")[:5]
    assert [line["exit_code"] for line in found] == [3] * 5
    assert [line["restarts"] for line in found] == [1, 2, 3, 4, 5]
    assert [line["restart_in_seconds"] for line in found] == [0.05, 0.1, 0.2, 0.2, 0.2]


def test_sigterm_stops_every_process_and_every_grandchild(tmp_path, stop_at_end):
    supervisor, status_path = start_supervisor(tmp_path, {"sleeper": SLEEPER, "parent": PARENT_OF_SLEEPER})
    stop_at_end(supervisor)
    running_status(status_path, "sleeper", "parent")

    def whole_family():
        found = descendants(supervisor.pid)
        return found if len(found) == 3 else None  # two processes and the grandchild

    family = wait_for(whole_family, what="the processes and the grandchild")

    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(timeout=10) == 0
    assert not [pid for pid in family if alive(pid)]
    assert not status_path.exists()
    stopped = {line["child"] for line in log_lines(tmp_path) if line["message"] == "process stopped"}
    assert stopped == {"sleeper", "parent"}


def test_sigint_stops_them_too(tmp_path, stop_at_end):
    supervisor, status_path = start_supervisor(tmp_path, {"sleeper": SLEEPER})
    stop_at_end(supervisor)
    pid = running_status(status_path, "sleeper")["children"]["sleeper"]["pid"]

    supervisor.send_signal(signal.SIGINT)

    assert supervisor.wait(timeout=10) == 0
    assert not alive(pid)


def test_a_process_that_ignores_sigterm_is_killed_after_the_stop_timeout(tmp_path, stop_at_end):
    supervisor, status_path = start_supervisor(tmp_path, {"stubborn": IGNORES_SIGTERM}, stop_timeout=0.5)
    stop_at_end(supervisor)
    pid = running_status(status_path, "stubborn")["children"]["stubborn"]["pid"]
    time.sleep(0.3)  # let it install its handler

    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(timeout=10) == 0
    assert not alive(pid)
    assert any(line["message"].startswith("process did not stop in time") for line in log_lines(tmp_path))


def test_a_supervisor_killed_with_sigkill_leaves_no_orphan(tmp_path, stop_at_end):
    supervisor, status_path = start_supervisor(tmp_path, {"sleeper": SLEEPER, "other": SLEEPER})
    stop_at_end(supervisor)
    status = running_status(status_path, "sleeper", "other")
    pids = [child["pid"] for child in status["children"].values()]

    supervisor.kill()
    supervisor.wait()

    wait_for(lambda: not any(alive(pid) for pid in pids), what="the children to die with their supervisor")
