"""What every section shares: figures and their peers, percentiles, client processes, counters.

Clients that run "at once" are processes, not threads: each has its own interpreter (no shared
GIL) and its own database connection, as separate web workers would. They are forked after
Django is set up, with every connection closed first, and wait on a barrier so that the clock
starts when all of them can run.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import os
import re
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.utils import CaptureQueriesContext


def say(message: str) -> None:
    """Progress goes to stderr; the table and the JSON go to stdout."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


@dataclass
class Row:
    """One line of the table: a figure, the peer it is set beside, and the target."""

    figure: str
    value: float | None
    unit: str
    peer: str = ""
    peer_value: float | None = None
    # The ratio as the target reads it (bank / peer), when the target is a ratio.
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Section:
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Longer listings kept beside the figures (e.g. the SQL of one transfer), not in the table.
    attachments: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    date: str = ""
    commit: str = ""

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        say(text)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by the nearest-rank method: a value that was measured."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


def compare(value: float | None, peer_value: float | None) -> float | None:
    if value is None or peer_value is None or peer_value == 0:
        return None
    return value / peer_value


@dataclass
class ClientResult:
    """What one client process did: the moments it started and finished, each operation's
    latency in seconds, and its errors by kind."""

    index: int
    started: float = 0.0
    finished: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)
    failure: str = ""


ClientWork = Callable[[int, multiprocessing.synchronize.Barrier, ClientResult], None]


def _client_main(
    work: ClientWork, index: int, barrier: multiprocessing.synchronize.Barrier, queue: multiprocessing.Queue[Any]
) -> None:
    result = ClientResult(index=index)
    try:
        work(index, barrier, result)
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the section
        result.failure = traceback.format_exc()
        barrier.abort()
    finally:
        connections.close_all()
        queue.put(result)


def run_clients(count: int, work: ClientWork, *, timeout: float = 600) -> list[ClientResult]:
    """Run `work` in `count` forked processes at once; each calls `barrier.wait()` right
    before its timed loop and fills its ClientResult."""
    connections.close_all()  # a forked child must never share its parent's socket
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count)
    queue: multiprocessing.Queue[Any] = context.Queue()
    processes = [context.Process(target=_client_main, args=(work, i, barrier, queue)) for i in range(count)]
    for process in processes:
        process.start()
    results: list[ClientResult] = []
    deadline = time.monotonic() + timeout
    try:
        while len(results) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{count - len(results)} of {count} clients did not finish in {timeout:.0f} s")
            results.append(queue.get(timeout=remaining))
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    failures = [r.failure for r in results if r.failure]
    if failures:
        raise RuntimeError("a client failed:\n" + failures[0])
    return sorted(results, key=lambda r: r.index)


def throughput(results: list[ClientResult]) -> tuple[int, float]:
    """(operations, wall seconds from the first start to the last finish)."""
    operations = sum(len(r.latencies) for r in results)
    wall = max(r.finished for r in results) - min(r.started for r in results)
    return operations, wall


def now() -> float:
    # CLOCK_MONOTONIC is system-wide on Linux: comparable across the client processes.
    return time.monotonic()


def database_error_kind(error: BaseException) -> str:
    """A short name for a failed operation, with PostgreSQL's SQLSTATE when there is one."""
    cause: BaseException | None = error
    while cause is not None:
        sqlstate = getattr(cause, "sqlstate", None)
        if sqlstate:
            return {"40P01": "deadlock", "40001": "serialization_failure", "55P03": "lock_not_available"}.get(
                sqlstate, f"sqlstate_{sqlstate}"
            )
        cause = cause.__cause__
    code = getattr(error, "code", None)
    return f"{type(error).__name__}:{code}" if code else type(error).__name__


# --- Statements and commits -----------------------------------------------------------------

TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)
SAVEPOINT_CONTROL = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.IGNORECASE)


@dataclass
class StatementCount:
    """What one operation cost the database, counted three ways that must agree."""

    statements: int = 0  # SQL that does work: SELECT, INSERT, UPDATE, DELETE, ...
    savepoints: int = 0  # SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO SAVEPOINT
    begins: int = 0
    commits: int = 0  # explicit COMMITs of outermost atomic blocks
    rollbacks: int = 0
    autocommit_statements: int = 0  # statements outside any transaction block: each commits alone
    pg_xact_commit: int | None = None  # pg_stat_database.xact_commit delta, the cross-check
    by_verb: Counter[str] = field(default_factory=Counter)
    sql: list[str] = field(default_factory=list)

    @property
    def transactions_committed(self) -> int:
        return self.commits + self.autocommit_statements

    @property
    def round_trips(self) -> int:
        return self.statements + self.savepoints + self.begins + self.commits + self.rollbacks


def _xact_commit(conn: BaseDatabaseWrapper) -> int:
    with conn.cursor() as cursor:
        # PostgreSQL 15 flushes a backend's statistics lazily; force this backend's out first.
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


@contextmanager
def count_statements(conn: BaseDatabaseWrapper | None = None) -> Iterator[StatementCount]:
    """Count what the block sends on `conn`.

    Django 5.2 logs BEGIN (when a transaction block starts), COMMIT and ROLLBACK beside the
    SQL and the savepoints, so CaptureQueriesContext sees every command; an execute wrapper
    notes which statements ran in autocommit mode (each is a transaction of its own). On
    PostgreSQL the database's own count of commits (`pg_stat_database.xact_commit`, flushed
    before and after) is taken too, less the two commits of reading it.
    """
    conn = conn or connection
    counted = StatementCount()
    autocommit_flags: list[bool] = []

    def note_mode(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        autocommit_flags.append(conn.get_autocommit())
        return execute(sql, params, many, context)

    postgres = conn.vendor == "postgresql"
    # The read itself commits: calibrated by reading twice with nothing in between.
    if postgres:
        first = _xact_commit(conn)
        overhead = _xact_commit(conn) - first
        before = _xact_commit(conn)
    with CaptureQueriesContext(conn) as captured, conn.execute_wrapper(note_mode):
        yield counted
    if postgres:
        counted.pg_xact_commit = _xact_commit(conn) - before - overhead
    counted.autocommit_statements = sum(autocommit_flags)
    for query in captured.captured_queries:
        sql = str(query["sql"])
        counted.sql.append(sql)
        control = TRANSACTION_CONTROL.match(sql)
        if SAVEPOINT_CONTROL.match(sql):
            counted.savepoints += 1
        elif control:
            verb = control.group(1).upper()
            counted.begins += verb == "BEGIN"
            counted.commits += verb == "COMMIT"
            counted.rollbacks += verb == "ROLLBACK"
        else:
            counted.statements += 1
            counted.by_verb[sql.split(None, 1)[0].upper()] += 1


def git_commit() -> str:
    """The commit measured, with `+changes` when the work tree differs from it."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if dirty else head
