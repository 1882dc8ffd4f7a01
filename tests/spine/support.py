"""Run the bank's commands in other processes against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_env() -> dict[str, str]:
    """Environment that points a child process at the database this test uses."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SQLITE_PATH"}}
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        env["SQLITE_PATH"] = str(db["NAME"])
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    return env


def manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**database_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ManagedProcess(subprocess.Popen[str]):
    """A bank command running beside the test, its stdout and stderr going to a file.

    Not to a pipe: a pipe nobody reads holds 64 KiB, and a long-running child that logs more
    than that (a relay logging every failed retry while the broker is away) blocks on its next
    write, stops working and no longer answers SIGTERM.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        handle, self.log_path = tempfile.mkstemp(prefix="fintech-child-", suffix=".log")
        with os.fdopen(handle, "w") as log:
            super().__init__(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        weakref.finalize(self, os.unlink, self.log_path)

    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr, interleaved)."""
        return Path(self.log_path).read_text(encoding="utf-8", errors="replace")


def start_manage(*args: str, env: dict[str, str] | None = None) -> ManagedProcess:
    return ManagedProcess([sys.executable, "manage.py", *args], env={**database_env(), **(env or {})})


T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, what: str = "condition") -> T:
    """The first true value `predicate` returns, asked every 20 ms; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """Running: neither gone nor a zombie waiting for its parent to collect it."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def descendants(pid: int) -> set[int]:
    """Every process below `pid`: children, grandchildren, ..."""
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(_stat_fields(int(entry.name))[1])
            except (FileNotFoundError, ProcessLookupError):
                continue
            children.setdefault(parent, set()).add(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter with Django set up on the test database."""
    prelude = "import django; django.setup()\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=ROOT,
        env=database_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# A complete production configuration (placeholder values, nothing real): what
# `DJANGO_ENV=production` demands before it starts.
PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "q8Zr-3vN_tW1mK9pL2xB7cY4hJ6fD0sG5aE-uR8iO3nV1wQ7zT2yC9kM4bX6eH0j",
    "ALLOWED_HOSTS": "bank.example",
    "OIDC_ISSUER": "https://id.bank.example/realms/fintech",
    "DATABASE_URL": "postgres://fintech:secret@127.0.0.1:55432/fintech",
    "FINTECH_ENCRYPTION_KEYS": "k1:3q2+7w0aYwSy6y0uKhLxTQ3d0mAvJUvyzA5pDkN0Hqo=",
    "FINTECH_BLIND_INDEX_KEY": "mXUj0Kp2n4O6xYBQd1bqY8cUvRr3aGwT5eLzHfJk9sI=",
    "FINTECH_PAYMENT_NETWORK_KEYS": "n1:Yk3v9QeT2mR7xWc4LpZ8sJ1uN6bH0dGfA5kE2rIoV3w=",
}
