"""`make run`'s server, for real: `manage.py serve_bank` on the embedded default (SQLite in a
temporary FINTECH_VAR_DIR, in-process events) on a free port. A burst of 50 connections is
queued, not reset, 50 simultaneous transfers all complete, and 30 writers at once see neither
a "database is locked" nor a reset connection; the admin and Swagger UI load
with their static files; a dispatcher killed with SIGKILL is restarted and logged while the bank
keeps serving; SIGTERM stops every process it started.

The tests share one running bank and run in the order written: the last one stops it."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import get_commands, load_command_class

from tests.factories import new_cpf
from tests.payments_support import ACCOUNT_BENEFICIARY
from tests.spine.support import ROOT, ManagedProcess, alive, descendants, wait_for

BURST = 50
SCOPES = "customers:write kyc:review accounts:read accounts:write deposits:write transfers:write payments:write"
# What the embedded default must not see: the services `make test` exports for the PostgreSQL run,
# and the suite's own settings (the probe context, key files outside the var directory).
NOT_EMBEDDED = {
    "DATABASE_URL",
    "SQLITE_PATH",
    "REDIS_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "OIDC_ISSUER",
    "DJANGO_ENV",
    "FINTECH_TEST_APPS",
    "FINTECH_DEV_ISSUER_KEY_PATH",
    "FINTECH_DEV_ENCRYPTION_KEY_PATH",
    "FINTECH_DEV_BLIND_INDEX_KEY_PATH",
    "FINTECH_WEB_BIND",
}


class Bank:
    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.status_path = var_dir / "serve-bank.json"
        self.env = {key: value for key, value in os.environ.items() if key not in NOT_EMBEDDED}
        self.env.update({"FINTECH_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "config.settings"})
        self.port = free_port()
        self.process: ManagedProcess | None = None

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    def start(self) -> None:
        self.process = ManagedProcess(
            [sys.executable, "manage.py", "serve_bank", "--bind", f"127.0.0.1:{self.port}"], env=self.env
        )

    def status(self) -> Any:
        try:
            return json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def output(self) -> str:
        assert self.process is not None
        return self.process.output()

    def log_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            payload = json.dumps(body) if body is not None else None
            all_headers = {"Content-Type": "application/json", **(headers or {})}
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def healthy(self) -> bool:
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def at_once(count: int, call: Any) -> list[Any]:
    """`call(i)` from `count` threads released together; each result, or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[index] = call(index)
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory):
    bank = Bank(tmp_path_factory.mktemp("serve-bank-var"))
    bank.manage("migrate", "--noinput", "-v", "0")
    bank.manage("collectstatic", "--noinput", "-v", "0")
    bank.start()
    try:
        wait_for(bank.healthy, timeout=60, what="/healthz on the supervised web server")
        yield bank
    finally:
        assert bank.process is not None
        if bank.process.poll() is None:
            bank.process.send_signal(signal.SIGTERM)
            try:
                bank.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                bank.process.kill()
                bank.process.wait()


def test_every_supervised_process_is_a_command_of_this_project(tmp_path):
    env = Bank(tmp_path).env | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "FINTECH_KAFKA_CONSUMER_GROUPS": "ledger"}
    show = "import json; from config import settings; print(json.dumps(settings.FINTECH_PROCESSES))"
    printed = subprocess.run(
        [sys.executable, "-c", show],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    processes = json.loads(printed)

    assert set(processes) == {
        "web",
        "dispatcher",
        "relay",
        "notifications",
        "fraud-review-expiry",
        "overdue-payments",
        "consumer-ledger",
        "consumer-payments",
    }
    assert processes["consumer-ledger"] == ["manage.py", "consume", "--group", "ledger"]
    # The payment network's answers and credits: payments settle only while this one runs.
    assert processes["consumer-payments"] == [
        "manage.py",
        "consume",
        "--group",
        "payments",
        "--topics",
        "payment.processed,payment.received",
    ]
    assert processes["web"][:4] == ["-m", "gunicorn", "--config", "python:config.gunicorn"]
    commands = get_commands()
    for name, argv in processes.items():
        if argv[0] == "manage.py":
            assert argv[1] in commands, f"{name}: manage.py {argv[1]} is not a command of this project"
            load_command_class(commands[argv[1]], argv[1])


def test_it_serves_with_gunicorn_and_supervises_web_dispatcher_and_relay(bank):
    status = wait_for(bank.status, what="the status file")
    assert status["supervisor_pid"] == bank.process.pid
    assert set(status["children"]) == {
        "web",
        "dispatcher",
        "relay",
        "notifications",
        "fraud-review-expiry",
        "overdue-payments",
    }
    assert all(child["running"] for child in status["children"].values())
    _, headers, _ = bank.request("GET", "/healthz")
    assert headers["Server"] == "gunicorn"


def test_a_burst_of_50_connections_is_queued_and_answered_not_reset(bank):
    def get_health(index: int) -> int:
        with socket.create_connection(("127.0.0.1", bank.port), timeout=60) as connection:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        return int(answer.split(b" ", 2)[1])

    results = at_once(BURST, get_health)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, f"{len(errors)} of {BURST} connections failed: {errors[:3]}"
    assert results == [200] * BURST


def staff_auth(bank: Bank) -> dict[str, str]:
    token = bank.manage("issue_token", "--sub", "serve-bank-test", "--scopes", SCOPES).strip()
    return {"Authorization": f"Bearer {token}"}


def open_accounts(bank: Bank, auth: dict[str, str], count: int, *, funds: int) -> list[str]:
    """`count` accounts of verified customers opened through the API, each funded with `funds`."""

    def created(path: str, body: Any = None, key: str | None = None) -> Any:
        headers = {**auth, **({"Idempotency-Key": key} if key else {})}
        status, _, content = bank.request("POST", path, body, headers)
        assert status in (200, 201), content
        return json.loads(content)

    accounts = []
    for index in range(count):
        customer = created(
            "/api/v1/customers",
            {"name": f"Cliente {index} Souza", "email": f"{uuid.uuid4().hex[:8]}@example.com", "document": new_cpf()},
            key=str(uuid.uuid4()),
        )
        created(f"/api/v1/customers/{customer['id']}/verify")
        account = created("/api/v1/accounts", {"customer_id": customer["id"]})["id"]
        if funds:
            created(
                "/api/v1/deposits",
                {"account_id": account, "amount": funds, "currency": "BRL", "reference": f"funds-{uuid.uuid4()}"},
                key=str(uuid.uuid4()),
            )
        accounts.append(account)
    return accounts


def test_50_simultaneous_transfers_all_complete_and_the_books_reconcile(bank):
    auth = staff_auth(bank)
    source, target = open_accounts(bank, auth, 2, funds=0)
    status, _, content = bank.request(
        "POST",
        "/api/v1/deposits",
        {"account_id": source, "amount": 100_000, "currency": "BRL", "reference": "burst"},
        {**auth, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert status == 201, content

    def transfer(index: int) -> tuple[int, Any]:
        status, _, content = bank.request(
            "POST",
            "/api/v1/transfers",
            {"from_account_id": source, "to_account_id": target, "amount": 100, "currency": "BRL"},
            {**auth, "Idempotency-Key": f"burst-{index}-{uuid.uuid4()}"},
        )
        return status, json.loads(content)

    results = at_once(BURST, transfer)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, f"{len(errors)} of {BURST} connections failed: {errors[:3]}"
    assert [status for status, _ in results] == [201] * BURST, [body for status, body in results if status != 201][:3]
    assert {body["status"] for _, body in results} == {"completed"}
    status, _, content = bank.request("GET", f"/api/v1/accounts/{source}", headers=auth)
    assert status == 200
    assert json.loads(content)["balance"] == 100_000 - BURST * 100
    assert "database is locked" not in bank.output()
    bank.manage("reconcile")


WRITERS = 30
WRITES_EACH = 8


def test_30_concurrent_writers_on_the_embedded_default_never_see_database_is_locked_or_a_reset(bank):
    """Thirty clients writing at once, each a run of deposits, transfers, small batches and
    payments to another bank (the dispatcher, the relay, the notification sender and the
    in-process payment network write beside them): SQLite's one writer
    at a time queues them. Every request is answered, none with a 5xx, no connection is reset,
    and nothing anywhere logs "database is locked"."""
    auth = staff_auth(bank)
    accounts = open_accounts(bank, auth, 6, funds=1_000_000)

    def writer(index: int) -> list[int]:
        statuses = []
        for step in range(WRITES_EACH):
            source, target = accounts[(index + step) % len(accounts)], accounts[(index + step + 1) % len(accounts)]
            key = {"Idempotency-Key": str(uuid.uuid4())}
            if step % 4 == 0:
                path = "/api/v1/deposits"
                body: Any = {"account_id": target, "amount": 500, "currency": "BRL", "reference": str(uuid.uuid4())}
            elif step % 4 == 1:
                path, body = (
                    "/api/v1/transfers",
                    {
                        "from_account_id": source,
                        "to_account_id": target,
                        "amount": 100,
                        "currency": "BRL",
                    },
                )
            elif step % 4 == 3:
                path = "/api/v1/payments"
                body = {"account_id": source, "amount": 150, "currency": "BRL", "beneficiary": ACCOUNT_BENEFICIARY}
            else:
                path, key = "/api/v1/transfers/batch", {}
                body = {
                    "transfers": [
                        {"id": str(uuid.uuid4()), "from_account_id": source, "to_account_id": target}
                        | {"amount": 10 + n, "currency": "BRL"}
                        for n in range(3)
                    ]
                }
            status, _, content = bank.request("POST", path, body, {**auth, **key})
            assert status < 500, (path, status, content[:500])
            statuses.append(status)
        return statuses

    results = at_once(WRITERS, writer)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, f"{len(errors)} of {WRITERS} writers failed: {errors[:3]}"
    assert {status for statuses in results for status in statuses} <= {201, 202, 207}, results
    assert "database is locked" not in bank.output()
    bank.manage("reconcile")


def test_the_admin_and_swagger_ui_load_with_their_static_files(bank):
    for page in ("/admin/login/", "/api/docs/"):
        status, _, content = bank.request("GET", page)
        assert status == 200, page
        assets = re.findall(r'(?:href|src)="(/static/[^"]+\.(?:css|js))"', content.decode())
        assert assets, f"{page} links no stylesheet or script"
        for asset in assets:
            status, headers, body = bank.request("GET", asset)
            assert status == 200, asset
            assert body, asset
            expected = "text/css" if asset.endswith(".css") else "javascript"
            assert expected in headers["Content-Type"], (asset, headers["Content-Type"])


def test_a_dispatcher_killed_with_sigkill_is_restarted_and_logged_while_the_bank_serves(bank):
    before = wait_for(bank.status, what="the status file")["children"]["dispatcher"]
    os.kill(before["pid"], signal.SIGKILL)

    def restarted() -> Any:
        child = (bank.status() or {}).get("children", {}).get("dispatcher", {})
        return child if child.get("running") and child.get("pid") != before["pid"] else None

    after = wait_for(restarted, timeout=20, what="a new dispatcher")
    assert after["restarts"] == before["restarts"] + 1
    assert alive(after["pid"])
    exits = [
        line
        for line in bank.log_lines()
        if line.get("child") == "dispatcher" and line["message"].startswith("process exited")
    ]
    assert exits[-1]["child_pid"] == before["pid"]
    assert exits[-1]["signal"] == "SIGKILL"
    assert exits[-1]["restarts"] == after["restarts"]
    assert bank.healthy()
    command = Path(f"/proc/{after['pid']}/cmdline").read_bytes().split(b"\0")
    assert b"dispatch_events" in command


def test_sigterm_stops_the_supervisor_and_every_process_it_started(bank):
    wait_for(bank.status, what="the status file")
    family = descendants(bank.process.pid)
    # gunicorn's master and workers, the dispatcher, the relay and the overdue-payments flag
    assert len(family) >= 5, family

    started = time.monotonic()
    bank.process.send_signal(signal.SIGTERM)

    assert bank.process.wait(timeout=40) == 0
    assert not [pid for pid in family if alive(pid)], "orphans left behind"
    assert not bank.status_path.exists()
    stopped = {line["child"] for line in bank.log_lines() if line["message"] == "process stopped"}
    assert stopped == {"web", "dispatcher", "relay", "notifications", "fraud-review-expiry", "overdue-payments"}
    assert time.monotonic() - started < 30
