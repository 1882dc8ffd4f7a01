"""Runs a set of long-running processes as one service, the way an init system would.

- Each process is started with this Python interpreter, in its own process group, and told by
  the kernel to receive SIGTERM if the supervisor dies (PR_SET_PDEATHSIG): a supervisor killed
  with SIGKILL leaves no orphan either.
- One that exits while the supervisor runs (crash, kill -9, exit 0: every process here is meant
  to run until stopped) is restarted after a backoff that doubles with each exit in a row
  (0.5 s, 1 s, 2 s, ... at most 30 s) and starts over once a run lasted 30 s. Each exit is one
  log line with the process's name, exit code or signal, and restart count.
- SIGTERM or SIGINT stops it: SIGTERM goes to every process (each finishes what it is doing:
  gunicorn its requests in flight, the dispatcher and the relay their step), and a process group
  still alive after `stop_timeout` is killed; a second signal kills them all at once. It exits 0.
- The status file (JSON: the supervisor's pid, each process's pid and restart count) is
  rewritten on every change and removed on exit.

Nothing here knows the bank: the processes are data (settings.FINTECH_PROCESSES).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    argv: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    exits_in_a_row: int = 0
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


def describe_exit(returncode: int) -> dict[str, int | str | None]:
    """A Popen return code as the log line's fields: a negative code is the signal that ended it."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return {"exit_code": None, "signal": name}
    return {"exit_code": returncode, "signal": None}


class Supervisor:
    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        *,
        cwd: Path | str,
        env: Mapping[str, str],
        status_path: Path | None = None,
        stop_timeout: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 30.0,
        poll_interval: float = 0.2,
    ) -> None:
        self.children = [Child(name, tuple(argv)) for name, argv in commands.items()]
        self.cwd = Path(cwd)
        self.env = dict(env)
        self.status_path = status_path
        self.stop_timeout = stop_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._stopping = False

    # -- running --------------------------------------------------------------------------------

    def run(self) -> int:
        """Start every process, keep them running until SIGTERM/SIGINT, then stop them all."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            logger.info("supervisor starting", extra={"children": [child.name for child in self.children]})
            for child in self.children:
                if not self._stop.is_set():
                    self._start(child)
            while not self._stop.is_set():
                self._tend()
                self._stop.wait(self.poll_interval)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.status_path is not None:
                self.status_path.unlink(missing_ok=True)
        logger.info("supervisor stopped")
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:  # a second signal: no more waiting
            logger.warning("second %s: killing every process", signal.Signals(signum).name)
            for child in self.children:
                if child.process is not None:
                    _kill_group(child.process.pid)
            return
        logger.info("%s received: stopping every process", signal.Signals(signum).name)
        self._stop.set()

    def _start(self, child: Child) -> None:
        child.process = subprocess.Popen(  # noqa: S603 - the bank's own commands, from settings
            [sys.executable, *child.argv],
            cwd=self.cwd,
            env=self.env,
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),  # safe here: the supervisor runs no other thread
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info(
            "process started",
            extra={"child": child.name, "child_pid": child.process.pid, "restarts": child.restarts},
        )
        self._write_status()

    def _tend(self) -> None:
        """Notice processes that exited, and restart those whose backoff is over."""
        now = time.monotonic()
        for child in self.children:
            if child.process is not None:
                returncode = child.process.poll()
                if returncode is None:
                    continue
                pid = child.process.pid
                _kill_group(pid)  # what it leaves behind (a gunicorn worker whose master died) goes too
                ran = now - child.started_at
                child.exits_in_a_row = 1 if ran >= self.stable_after else child.exits_in_a_row + 1
                delay = min(self.backoff_initial * 2 ** (child.exits_in_a_row - 1), self.backoff_max)
                child.process = None
                child.restarts += 1
                child.restart_at = now + delay
                logger.error(
                    "process exited unexpectedly; restarting it",
                    extra={
                        "child": child.name,
                        "child_pid": pid,
                        **describe_exit(returncode),
                        "restarts": child.restarts,
                        "ran_seconds": round(ran, 3),
                        "restart_in_seconds": delay,
                    },
                )
                self._write_status()
            elif child.restart_at is not None and now >= child.restart_at:
                self._start(child)

    # -- stopping -------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        self._stopping = True
        running = [child for child in self.children if child.process is not None]
        for child in running:
            assert child.process is not None
            _signal_quietly(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while running and time.monotonic() < deadline:
            for child in list(running):
                assert child.process is not None
                returncode = child.process.poll()
                if returncode is not None:
                    logger.info(
                        "process stopped",
                        extra={"child": child.name, "child_pid": child.process.pid, **describe_exit(returncode)},
                    )
                    running.remove(child)
            time.sleep(0.05)
        for child in running:
            assert child.process is not None
            logger.warning(
                "process did not stop in time; killing it",
                extra={"child": child.name, "child_pid": child.process.pid, "stop_timeout": self.stop_timeout},
            )
            _kill_group(child.process.pid)
            child.process.wait()
        for child in self.children:  # whatever a process group still holds (grandchildren) goes too
            if child.process is not None:
                _kill_group(child.process.pid)
                child.process = None

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        return {
            "supervisor_pid": os.getpid(),
            "children": {
                child.name: {"pid": child.pid, "restarts": child.restarts, "running": child.process is not None}
                for child in self.children
            },
        }

    def _write_status(self) -> None:
        if self.status_path is None:
            return
        self.status_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.status_path.with_name(f".{self.status_path.name}.{os.getpid()}")
        partial.write_text(json.dumps(self.status(), indent=2) + "\n")
        partial.replace(self.status_path)  # readers never see half a file


def _signal_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _die_with_parent(parent: int) -> Callable[[], None]:
    """What the child runs before exec: SIGTERM when the supervisor dies (Linux); nothing elsewhere."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None

    def arrange() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return arrange
