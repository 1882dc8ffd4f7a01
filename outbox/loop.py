"""A polling loop for long-running commands that stops cleanly on SIGTERM or SIGINT:
the step in progress finishes (its transaction commits or rolls back whole), then it exits."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from django.db import close_old_connections


class StopSignal:
    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._handle)
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.event.set()

    @property
    def stopped(self) -> bool:
        return self.event.is_set()


def run_until_stopped(step: Callable[[], int], *, idle_seconds: float, stop: StopSignal | None = None) -> None:
    """Call `step` again and again; sleep `idle_seconds` whenever it found nothing to do."""
    stop = stop or StopSignal()
    stop.install()
    while not stop.stopped:
        close_old_connections()  # a dropped database connection is replaced, not fatal
        did = step()
        if not did:
            stop.event.wait(idle_seconds)
