"""Figures 4 and 6: HTTP load on the server `make run` starts (deploy/local/run-bank.sh), on
PostgreSQL (the benchmark database) and on the embedded default (SQLite in a fresh folder).

The load generator is vegeta (github.com/tsenart/vegeta, MIT), built by `make bench` with
`go install` into /var/tmp/fintech-local/bench/bin, outside git. Every request goes to
127.0.0.1 only, every attack is bounded in time, and the server this module starts is always
stopped (its whole process group) when the section ends, whatever happened.

Over 400 lines because both HTTP sections (single transfers and batches) share one server's
life cycle here: start, tokens, fixtures over HTTP, attacks, stop. A third HTTP section would
be the time to move that life cycle into a module of its own.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection
from django.urls import Resolver404, resolve

from bench.harness import Row, Section, say
from bench.options import Options

ROOT = Path(__file__).resolve().parent.parent.parent
STATE = Path(os.environ.get("BENCH_STATE_DIR", "/var/tmp/fintech-local/bench"))
VEGETA = Path(os.environ.get("BENCH_VEGETA", str(STATE / "bin" / "vegeta")))
SCOPES = (
    "customers:read customers:write kyc:review accounts:read accounts:write deposits:write "
    "transfers:read transfers:write"
)
UNLIMITED = str(10**9)


@dataclass
class Server:
    database: str
    port: int
    env: dict[str, str]
    log: Path
    sqlite_path: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _server_env(database: str, var_dir: str, port: int) -> tuple[dict[str, str], str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "OIDC_ISSUER", "REDIS_URL"}}
    # The relay ships to its log sink, as with `make run` alone; Kafka is the relay section's.
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(
        {
            "PORT": str(port),
            "FINTECH_VAR_DIR": var_dir,
            "DEBUG": "false",  # as in production; DEBUG on keeps a log of every query in memory
            "FINTECH_EVENT_DISPATCH": "inline",
            "FINTECH_RATE_LIMIT_CUSTOMER_READS": UNLIMITED,
            "FINTECH_RATE_LIMIT_CUSTOMER_MONEY": UNLIMITED,
            "PYTHONUNBUFFERED": "1",
        }
    )
    sqlite_path = ""
    if database == "sqlite":
        env.pop("DATABASE_URL", None)
        sqlite_path = os.path.join(var_dir, "bank.sqlite3")
        env["SQLITE_PATH"] = sqlite_path
    return env, sqlite_path


@contextmanager
def running_server(database: str) -> Iterator[Server]:
    """`make run`'s server on a free loopback port, stopped with its children on the way out."""
    port = _free_port()
    STATE.mkdir(parents=True, exist_ok=True)
    if database == "sqlite":
        var_dir = tempfile.mkdtemp(prefix="sqlite-", dir=STATE)
    else:
        var_dir = os.environ.get("FINTECH_VAR_DIR", str(STATE / "var"))
    env, sqlite_path = _server_env(database, var_dir, port)
    log = STATE / f"server-{database}.log"
    server = Server(database, port, env, log, sqlite_path)
    with open(log, "wb") as output:
        server.process = subprocess.Popen(
            ["bash", "deploy/local/run-bank.sh"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the sweeper and relay go with it
        )
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(server)


def _wait_ready(server: Server, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}; see {server.log}")
        try:
            with urllib.request.urlopen(f"{server.base}/healthz", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer /healthz in {timeout:.0f} s; see {server.log}")


def _stop(server: Server) -> None:
    process = server.process
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def _token(server: Server, subject: str) -> str:
    """A token from the dev issuer whose key the server reads (same FINTECH_VAR_DIR)."""
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "issue_token", "--sub", subject, "--scopes", SCOPES],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _call(server: Server, token: str, path: str, body: dict[str, Any] | None = None, *, key: bool = True) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{server.base}/api/v1/{path}",
        data=json.dumps(body or {}).encode(),
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        return json.loads(response.read() or b"{}")


def _accounts(server: Server, token: str, count: int, balance: int) -> list[str]:
    """Verified customers with funded accounts, made through the API."""
    from bench.fixtures import screening_for_load
    from tests.factories import new_cpf

    screening_for_load()
    accounts = []
    for index in range(count):
        customer = _call(
            server,
            token,
            "customers",
            {"name": f"Bench HTTP {index}", "email": f"bench-http-{index}@example.com", "document": new_cpf()},
        )
        _call(server, token, f"customers/{customer['id']}/verify", key=False)
        account = _call(server, token, "accounts", {"customer_id": customer["id"]})
        _call(
            server,
            token,
            "deposits",
            {"account_id": account["id"], "amount": balance, "currency": "BRL", "reference": str(uuid.uuid4())},
        )
        accounts.append(str(account["id"]))
    return accounts


@dataclass
class Attack:
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    codes: dict[str, int] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    resets: int = 0
    completed: int = 0
    states: dict[str, int] = field(default_factory=dict)


def _targets(server: Server, token: str, accounts: list[str], count: int, path: Path) -> None:
    rng = random.Random(11)
    with open(path, "w") as out:
        for _ in range(count):
            source, destination = rng.sample(accounts, 2)
            body = {"from_account_id": source, "to_account_id": destination, "amount": 1, "currency": "BRL"}
            target = {
                "method": "POST",
                "url": f"{server.base}/api/v1/transfers",
                "body": base64.b64encode(json.dumps(body).encode()).decode(),
                "header": {
                    "Authorization": [f"Bearer {token}"],
                    "Content-Type": ["application/json"],
                    "Idempotency-Key": [str(uuid.uuid4())],
                },
            }
            out.write(json.dumps(target) + "\n")


def _attack(server: Server, accounts: list[str], *, name: str, seconds: int, rate: int, connections: int) -> Attack:
    """One bounded vegeta attack of unique transfers; rate 0 is a closed loop of `connections`
    workers, a rate is an open loop at that many requests a second."""
    subject = f"bench-http-{name}-{uuid.uuid4().hex[:8]}"
    token = _token(server, subject)
    work = STATE / "vegeta"
    work.mkdir(parents=True, exist_ok=True)
    targets, results = work / f"{name}.targets", work / f"{name}.bin"
    # More targets than the attack can send, so that no request is a replay of an earlier one.
    count = seconds * (rate if rate else 1500) + 1000
    _targets(server, token, accounts, count, targets)
    command = [
        str(VEGETA),
        "attack",
        "-format=json",
        f"-targets={targets}",
        f"-duration={seconds}s",
        "-timeout=30s",
        f"-output={results}",
    ]
    if rate:
        command += [f"-rate={rate}/1s"]  # open loop: workers are added as needed to keep the rate
    else:
        command += ["-rate=0", f"-workers={connections}", f"-max-workers={connections}"]
    command += [f"-connections={connections}", f"-max-connections={connections}"]
    say(f"http: {server.database}: vegeta {' '.join(command[2:])}")
    subprocess.run(command, check=True, timeout=seconds + 120)
    report = json.loads(
        subprocess.run(
            [str(VEGETA), "report", "-type=json", str(results)], check=True, capture_output=True, text=True
        ).stdout
    )
    attack = Attack(
        requests=int(report["requests"]),
        seconds=(int(report["duration"]) + int(report["wait"])) / 1e9,
        p50_ms=int(report["latencies"]["50th"]) / 1e6,
        p99_ms=int(report["latencies"]["99th"]) / 1e6,
        codes={str(k): int(v) for k, v in report["status_codes"].items()},
    )
    if attack.requests > count:
        raise RuntimeError(f"vegeta sent {attack.requests} requests for {count} targets: some were replays")
    encoded = subprocess.run(
        [str(VEGETA), "encode", "-to=json", str(results)], check=True, capture_output=True, text=True
    ).stdout
    for line in encoded.splitlines():
        error = json.loads(line).get("error") or ""
        if error:
            kind = "connection reset" if "reset" in error else error.split(": ")[-1][:80]
            attack.errors[kind] += 1
    attack.resets = attack.errors.get("connection reset", 0)
    attack.states = _transfer_states(server, subject)
    attack.completed = attack.states.get("completed", 0)
    targets.unlink(missing_ok=True)
    results.unlink(missing_ok=True)
    return attack


def _transfer_states(server: Server, subject: str) -> dict[str, int]:
    """What became of the attack's transfers, read from the server's own database."""
    sql = "SELECT status, count(*) FROM transactions_transfer WHERE initiated_by = %s GROUP BY status"
    if server.database == "sqlite":
        with sqlite3.connect(f"file:{server.sqlite_path}?mode=ro", uri=True, timeout=30) as db:
            rows = db.execute(sql.replace("%s", "?"), [subject]).fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, [subject])
            rows = cursor.fetchall()
    return {str(status): int(n) for status, n in rows}


def _vegeta_ready(section: Section) -> bool:
    if VEGETA.exists():
        return True
    section.note(
        f"not available: no vegeta at {VEGETA} (make bench builds it with "
        "`go install github.com/tsenart/vegeta/v12@v12.13.0`)"
    )
    return False


def run_http(options: Options, section: Section) -> None:
    if not _vegeta_ready(section):
        return
    for database in [d.strip() for d in options.http_databases.split(",") if d.strip()]:
        say(f"http: starting make run's server on {database}")
        with running_server(database) as server:
            token = _token(server, "bench-http-setup")
            say(f"http: {database}: {options.http_accounts} funded accounts through the API")
            accounts = _accounts(server, token, options.http_accounts, balance=10_000_000)
            # Warm-up, not counted: the server's first requests import and connect.
            _attack(server, accounts, name=f"{database}-warm", seconds=3, rate=20, connections=10)
            closed = _attack(
                server,
                accounts,
                name=f"{database}-closed",
                seconds=options.http_seconds,
                rate=0,
                connections=options.http_connections,
            )
            opened = _attack(
                server,
                accounts,
                name=f"{database}-open",
                seconds=options.http_seconds,
                rate=options.http_rate,
                connections=options.http_connections,
            )
        label = "PostgreSQL" if database == "postgres" else "SQLite (embedded default)"
        rate = closed.completed / closed.seconds if closed.seconds else 0.0
        section.add(
            Row(
                f"{label}: completed transfers/s, {options.http_connections} connections (closed loop)",
                rate,
                "transfers/s",
                target=">= 300/s",
                met=rate >= 300,
                note=f"POST p50 {closed.p50_ms:.0f} ms, p99 {closed.p99_ms:.0f} ms; {closed.requests} requests; "
                f"codes {closed.codes}; transfers {closed.states}",
            )
        )
        section.add(
            Row(
                f"{label}: POST /transfers p99 at {options.http_rate}/s offered (open loop)",
                opened.p99_ms,
                "ms",
                target="<= 150 ms",
                met=opened.p99_ms <= 150,
                note=f"p50 {opened.p50_ms:.1f} ms; {opened.requests} requests; codes {opened.codes}; "
                f"completed {opened.completed}",
            )
        )
        resets = closed.resets + opened.resets
        section.add(
            Row(
                f"{label}: connection resets (both attacks)",
                resets,
                "resets",
                target="0",
                met=resets == 0,
                note=f"other errors: {dict(closed.errors + opened.errors - Counter({'connection reset': resets}))}",
            )
        )
    section.note(
        "The server is started the way `make run` starts it: deploy/local/run-bank.sh with PORT set (migrate, "
        "collectstatic, the dispatch sweeper, the relay to its log sink, and `manage.py runserver`), with DEBUG "
        "off and the rate limits raised (FINTECH_RATE_LIMIT_*). PostgreSQL: DATABASE_URL of fintech_bench; "
        "SQLite: a fresh FINTECH_VAR_DIR and SQLITE_PATH. Customers, verifications, accounts and deposits are "
        "made through the API first; every POST /transfers is a unique transfer between two random accounts of "
        "100 with a unique Idempotency-Key."
    )
    section.note(
        f"Load: vegeta v12.13.0, {options.http_seconds} s per attack after a 3 s warm-up; closed loop = "
        f"`-rate=0 -workers={options.http_connections} -max-workers={options.http_connections}` (each of the "
        f"{options.http_connections} connections sends its next request when the last one is answered); open loop "
        f"= `-rate={options.http_rate}/1s` (requests leave on schedule whatever the server does). Completed "
        "transfers are counted in the server's database (status `completed`) and divided by the attack's time "
        "until the last answer. Resets are requests that vegeta saw fail with `connection reset by peer`."
    )


def run_batch(options: Options, section: Section) -> None:
    try:
        match = resolve("/api/v1/transfers/batch")
    except Resolver404:
        match = None
    if match is None or match.url_name == "transfer-detail":
        section.note("not available in this build: no route POST /api/v1/transfers/batch")
        return
    with running_server("postgres") as server:
        subject = f"bench-batch-{uuid.uuid4().hex[:8]}"
        token = _token(server, subject)
        accounts = _accounts(server, _token(server, "bench-batch-setup"), 20, balance=50_000_000)
        rng = random.Random(5)

        def body() -> dict[str, Any]:
            items = []
            for _ in range(options.batch_items):
                source, destination = rng.sample(accounts, 2)
                items.append(
                    {
                        "id": str(uuid.uuid4()),
                        "from_account_id": source,
                        "to_account_id": destination,
                        "amount": 1,
                        "currency": "BRL",
                    }
                )
            return {"transfers": items}

        _call(server, token, "transfers/batch", body())  # warm-up
        bodies = [body() for _ in range(options.batch_requests)]
        before = _transfer_states(server, subject).get("completed", 0)
        answers = []
        started = time.monotonic()
        for payload in bodies:
            answers.append(_call(server, token, "transfers/batch", payload))
        seconds = time.monotonic() - started
        states = _transfer_states(server, subject)
    # Counted in the database by the token's subject; should the endpoint record another
    # initiator, the answers' own per-item results say which transfers completed.
    completed = max(states.get("completed", 0) - before, sum(_completed_items(a) for a in answers))
    rate = completed / seconds
    section.add(
        Row(
            f"POST /transfers/batch, {options.batch_items:,} items a request, 1 client",
            rate,
            "completed transfers/s",
            target=">= 5,000/s",
            met=rate >= 5000,
            note=f"{options.batch_requests} requests; transfers by status: {states}",
        )
    )


def _completed_items(answer: Any) -> int:
    items = answer.get("results", answer.get("transfers", [])) if isinstance(answer, dict) else answer
    count = 0
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        inner = item.get("body") if isinstance(item.get("body"), dict) else item.get("transfer", item)
        count += isinstance(inner, dict) and inner.get("status") == "completed"
    return count
