"""A lost database under a running dispatcher: it waits, reconnects and finishes every transfer.

The test runs its own PostgreSQL (deploy/local/postgres.sh in a private directory, on a free
port), so stopping it harms nothing else the suite uses. Transfers are accepted while only the
dispatcher delivers (`FINTECH_EVENT_DISPATCH=worker`); the server is stopped while the
dispatcher is half way through them and started again a few seconds later.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.spine.support import ROOT, ManagedProcess

pytestmark = pytest.mark.postgres

TRANSFERS = 120
POSTGRES = str(ROOT / "deploy" / "local" / "postgres.sh")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    def __init__(self, directory: Path) -> None:
        self.env = {**os.environ, "FINTECH_LOCAL_DIR": str(directory), "FINTECH_PG_PORT": str(free_port())}

    def run(self, action: str) -> str:
        done = subprocess.run(
            ["bash", POSTGRES, action], env=self.env, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, f"postgres.sh {action}: {done.stderr[-2000:]}"
        return done.stdout

    def url(self) -> str:
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in self.run("env").splitlines() if "=" in line
        )
        return exports["DATABASE_URL"]


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's temporary directory: the server runs as the postgres user, who must be
    # able to reach its data directory (pytest's are private to the user running the tests).
    directory = Path(tempfile.mkdtemp(prefix="fintech-outage-", dir="/var/tmp"))
    directory.chmod(0o755)
    server = PrivatePostgres(directory)
    try:
        server.run("start")
        yield server
    finally:
        server.run("stop")
        shutil.rmtree(directory, ignore_errors=True)


def bank_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SQLITE_PATH", "DATABASE_TEST_NAME"}}
    env.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "FINTECH_EVENT_DISPATCH": "worker",
            "DB_CONN_MAX_AGE": "60",
        }
    )
    return env


def python(env: dict[str, str], code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


COUNT_COMPLETED = """
from apps.transactions.models import Transfer
print(Transfer.objects.filter(status="completed").count())
"""


COUNT_UNDISPATCHED = """
from outbox.models import OutboxEvent
print(OutboxEvent.objects.filter(dispatched_at__isnull=True).count())
"""


def undispatched(env: dict[str, str]) -> int:
    """Events still waiting for a handler: the reactions to the last transfers come after them."""
    return int(python(env, COUNT_UNDISPATCHED).strip())


def completed(env: dict[str, str]) -> int:
    try:
        return int(python(env, COUNT_COMPLETED).strip())
    except AssertionError:
        return -1  # the database is away


def test_a_dispatcher_outlives_a_lost_database_and_finishes_every_transfer(private_postgres):
    env = bank_env(private_postgres.url())
    manage = [sys.executable, "manage.py"]
    migrated = subprocess.run(
        [*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    python(
        env,
        f"""
        from apps.fraud import services as fraud
        from apps.transactions import services
        from tests.factories import open_account
        # 120 transfers out of one account in a minute is what the velocity rule holds for review.
        fraud.rule_change(name="velocity", parameters={{"max_count": 1000}}, changed_by="t", changer_kind="system")
        source, destination = open_account(balance=1_000_000), open_account()
        for _ in range({TRANSFERS}):
            services.transfer_initiate(
                from_account_id=source.id, to_account_id=destination.id, amount=100, currency="BRL",
                initiated_by="outage-tester",
            )
        """,
    )
    assert completed(env) == 0

    # Two transfers per unit of work, so the outage lands between commits.
    dispatcher = ManagedProcess(
        [*manage, "dispatch_events", "--grace", "0", "--idle", "0.1", "--batch-size", "2"], env=env
    )
    try:
        deadline = time.monotonic() + 120
        while completed(env) < 10:
            assert dispatcher.poll() is None, dispatcher.output()[-3000:]
            assert time.monotonic() < deadline, "the dispatcher made no progress"
            time.sleep(0.2)
        private_postgres.run("stop")
        stopped_at = completed(env)
        assert stopped_at == -1  # the server is really away
        time.sleep(4)  # the dispatcher meets the lost database several times meanwhile
        assert dispatcher.poll() is None, "the dispatcher died with the database:\n" + dispatcher.output()[-3000:]
        private_postgres.run("start")

        deadline = time.monotonic() + 120
        while completed(env) < TRANSFERS or undispatched(env):
            assert dispatcher.poll() is None, dispatcher.output()[-3000:]
            assert time.monotonic() < deadline, "the dispatcher did not finish after the database came back"
            time.sleep(0.5)
    finally:
        dispatcher.terminate()
        dispatcher.wait(timeout=30)
    assert dispatcher.returncode == 0, dispatcher.output()[-3000:]
    assert "database unavailable; retrying" in dispatcher.output()

    reconciled = subprocess.run(
        [*manage, "reconcile"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert reconciled.returncode == 0, reconciled.stdout[-3000:] + reconciled.stderr[-3000:]
    python(
        env,
        f"""
        from apps.ledger.models import JournalTransaction
        from outbox.models import OutboxEvent
        assert JournalTransaction.objects.filter(kind="transfer").count() == {TRANSFERS}
        assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
        """,
    )
