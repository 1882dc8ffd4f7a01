"""A polling loop for long-running commands that stops cleanly on SIGTERM or SIGINT:
the step in progress finishes (its transaction commits or rolls back whole), then it exits.

A database that goes away (restarted, failed over, unreachable) does not end the loop: the
step's error is logged, the broken connection is dropped, and the loop waits with a growing
pause (capped) before it tries again with a fresh connection. Anything else a step raises is
a bug and ends the command, so that its supervisor restarts it and someone sees it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from django.db import InterfaceError, OperationalError, close_old_connections, connections

logger = logging.getLogger(__name__)

DATABASE_AWAY = (OperationalError, InterfaceError)
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 10.0


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


def drop_connections() -> None:
    """Close every database connection of this thread, broken or not: the next query opens a
    new one (a connection that lived through a server restart is unusable)."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except DATABASE_AWAY:
            conn.connection = None  # the server is gone: there is nothing to close politely


def run_until_stopped(
    step: Callable[[], int], *, idle_seconds: float, stop: StopSignal | None = None, name: str = "loop"
) -> None:
    """Call `step` again and again; sleep `idle_seconds` whenever it found nothing to do, and
    back off while the database is away."""
    stop = stop or StopSignal()
    stop.install()
    pause = FIRST_PAUSE_SECONDS
    while not stop.stopped:
        close_old_connections()  # honours CONN_MAX_AGE, drops a connection known to be broken
        try:
            did = step()
        except DATABASE_AWAY as error:
            logger.warning(
                "database unavailable; retrying",
                extra={"loop": name, "error": str(error).strip()[:500], "retry_in_seconds": pause},
            )
            drop_connections()
            stop.event.wait(pause)
            pause = min(pause * 2, MAX_PAUSE_SECONDS)
            continue
        if pause > FIRST_PAUSE_SECONDS:
            logger.info("database available again", extra={"loop": name})
            pause = FIRST_PAUSE_SECONDS
        if not did:
            stop.event.wait(idle_seconds)
