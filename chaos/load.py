"""The load: money-moving requests over HTTP, each retried as a careful client would until it
gets a definitive answer.

A kind of load is an entry of `LOADS`: a function that plans its requests between the
scenario's accounts. Every request is planned with its body and its idempotency (an
`Idempotency-Key`, or the ids of a batch's items) before the load starts, and is sent again,
unchanged, after a reset connection, a refused connection, a timeout, a 5xx, a 429 or a 409
`idempotency_request_in_progress`, until the bank answers 2xx or a 4xx that is its final word.
So whatever the faults do, each request must end as one effect, and the checks can say which.

The requests are paced evenly over the scenario's seconds (the faults land while they run) and
sent by a pool of client threads, each request on a fresh connection.
"""

from __future__ import annotations

import http.client
import json
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Answers a client retries: the bank is restarting, overloaded, or still doing the first attempt.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
IN_PROGRESS = "idempotency_request_in_progress"
REQUEST_TIMEOUT_SECONDS = 30.0
BATCH_SIZE = 5
# Every transfer is far below what an account holds and below every fraud threshold.
AMOUNTS = (100, 999)
FUNDS = 50_000_000


@dataclass
class Operation:
    """One request of the load and what became of it."""

    kind: str
    path: str
    body: dict[str, Any]
    key: str | None  # the Idempotency-Key; None where the body carries its own ids (a batch)
    due: float = 0.0  # seconds after the load starts
    status: int | None = None  # the definitive answer's status
    answer: Any = None
    attempts: int = 0
    unanswered: str = ""  # why no definitive answer came, when none did

    @property
    def refused(self) -> bool:
        """A definitive 4xx: the load never asks for anything the bank should refuse."""
        return self.status is not None and self.status >= 400

    def transfer_ids(self) -> list[str]:
        """The transfers this request created or was told of."""
        if self.kind == "transfer" and isinstance(self.answer, dict) and "id" in self.answer:
            return [str(self.answer["id"])]
        if self.kind == "batch":
            return [str(item["id"]) for item in self.body["transfers"]]
        return []

    def payment_ids(self) -> list[str]:
        """The payment this request created."""
        if self.kind == "payment" and isinstance(self.answer, dict) and "id" in self.answer:
            return [str(self.answer["id"])]
        return []

    def refused_items(self) -> list[dict[str, Any]]:
        """The results of a batch's items that were refused."""
        if self.kind != "batch" or not isinstance(self.answer, dict):
            return []
        return [result for result in self.answer.get("results", []) if "problem" in result]


@dataclass(frozen=True)
class Incident:
    """An answer that was not definitive: a status the client retries, or a connection error."""

    at: float  # seconds after the load started
    path: str
    what: str  # "500", "503", "503 without Retry-After", "ConnectionRefusedError", ...
    detail: str = ""


@dataclass
class LoadReport:
    operations: list[Operation]
    incidents: list[Incident] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, predicate: Callable[[Incident], bool]) -> int:
        return sum(1 for incident in self.incidents if predicate(incident))

    @property
    def server_errors(self) -> Counter[str]:
        return Counter(incident.what for incident in self.incidents if incident.what[:1] == "5")

    @property
    def connection_errors(self) -> int:
        return self.count(lambda incident: not incident.what[:1].isdigit())


Plan = Callable[[list[str], int, random.Random], list[Operation]]


def _pair(accounts: list[str], rng: random.Random) -> tuple[str, str]:
    source, destination = rng.sample(accounts, 2)
    return source, destination


def plan_transfers(accounts: list[str], transfers: int, rng: random.Random) -> list[Operation]:
    """Seven in ten transfers one by one: `POST /transfers` under an Idempotency-Key."""
    operations = []
    for _ in range(transfers - transfers * 3 // 10):
        source, destination = _pair(accounts, rng)
        body = {"from_account_id": source, "to_account_id": destination, "amount": rng.randint(*AMOUNTS)}
        operations.append(Operation("transfer", "/api/v1/transfers", body | {"currency": "BRL"}, str(uuid.uuid4())))
    return operations


def plan_batches(accounts: list[str], transfers: int, rng: random.Random) -> list[Operation]:
    """Three in ten transfers in batches of five: `POST /transfers/batch`, each item's id its key."""
    operations = []
    for _ in range(transfers * 3 // 10 // BATCH_SIZE):
        items = []
        for _ in range(BATCH_SIZE):
            source, destination = _pair(accounts, rng)
            items.append(
                {
                    "id": str(uuid.uuid4()),
                    "from_account_id": source,
                    "to_account_id": destination,
                    "amount": rng.randint(*AMOUNTS),
                    "currency": "BRL",
                }
            )
        operations.append(Operation("batch", "/api/v1/transfers/batch", {"transfers": items}, None))
    return operations


def plan_deposits(accounts: list[str], transfers: int, rng: random.Random) -> list[Operation]:
    """A deposit for every ten transfers: `POST /deposits` under an Idempotency-Key."""
    operations = []
    for _ in range(max(1, transfers // 10)):
        body = {"account_id": rng.choice(accounts), "amount": rng.randint(*AMOUNTS), "currency": "BRL"}
        reference = f"chaos-{uuid.uuid4()}"
        operations.append(Operation("deposit", "/api/v1/deposits", body | {"reference": reference}, str(uuid.uuid4())))
    return operations


# Beneficiaries at other banks (the network's ISPB 00000000): an account, a PIX key, and one in
# ten an account the other bank has closed, which the simulated network returns.
BENEFICIARIES = (
    {"name": "Maria Oliveira", "document": "529.982.247-25", "bank_code": "00000000", "branch": "1234"}
    | {"account_number": "123456-7"},
    {"pix_key": "maria.oliveira@example.com"},
)
CLOSED_BENEFICIARY = BENEFICIARIES[0] | {"account_number": "99999123-4"}


def plan_payments(accounts: list[str], transfers: int, rng: random.Random) -> list[Operation]:
    """A payment to another bank for every five transfers: `POST /payments` under an
    Idempotency-Key; the network settles it, or returns it (a closed account, or at random)."""
    operations = []
    for index in range(max(1, transfers // 5)):
        beneficiary = CLOSED_BENEFICIARY if index % 10 == 9 else rng.choice(BENEFICIARIES)
        body = {"account_id": rng.choice(accounts), "amount": rng.randint(*AMOUNTS), "currency": "BRL"}
        operations.append(
            Operation("payment", "/api/v1/payments", body | {"beneficiary": beneficiary}, str(uuid.uuid4()))
        )
    return operations


# The kinds of load a scenario may name. A new money-moving endpoint is one more entry here.
LOADS: dict[str, Plan] = {
    "transfers": plan_transfers,
    "batches": plan_batches,
    "deposits": plan_deposits,
    "payments": plan_payments,
}


def plan(kinds: tuple[str, ...], accounts: list[str], *, transfers: int, seconds: float, seed: int) -> list[Operation]:
    """Every request of the load, shuffled, and due evenly over `seconds`."""
    rng = random.Random(seed)
    operations = [operation for kind in kinds for operation in LOADS[kind](accounts, transfers, rng)]
    rng.shuffle(operations)
    for index, operation in enumerate(operations):
        operation.due = seconds * index / max(1, len(operations))
    return operations


class Client:
    """Sends the load to the bank at `port` with a bearer token, each request on a fresh connection."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def request(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_SECONDS)
        try:
            connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


def _retry_after(headers: dict[str, str], attempt: int) -> float:
    raw = headers.get("retry-after", "")
    if raw.isdigit():
        return min(float(raw), 10.0)
    return min(0.2 * 2.0 ** min(attempt, 6), 5.0) * random.uniform(0.5, 1.5)


def _code(content: bytes) -> str:
    try:
        value = json.loads(content)
    except ValueError:
        return ""
    return str(value.get("code", "")) if isinstance(value, dict) else ""


class Driver:
    """Runs operations against the bank until each has a definitive answer or `give_up_after`."""

    def __init__(self, client: Client, *, clients: int = 12, give_up_after: float = 240.0) -> None:
        self.client = client
        self.clients = clients
        self.give_up_after = give_up_after
        self._lock = threading.Lock()
        self._incidents: list[Incident] = []
        self._started = 0.0

    def run(self, operations: list[Operation], *, stop: threading.Event | None = None) -> LoadReport:
        stop = stop or threading.Event()
        work: queue.Queue[Operation] = queue.Queue()
        for operation in sorted(operations, key=lambda o: o.due):
            work.put(operation)
        self._started = time.monotonic()

        def client_loop() -> None:
            while not stop.is_set():
                try:
                    operation = work.get_nowait()
                except queue.Empty:
                    return
                wait = self._started + operation.due - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    return
                self._send(operation, stop)

        threads = [threading.Thread(target=client_loop, name=f"chaos-client-{n}") for n in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return LoadReport(operations, list(self._incidents), time.monotonic() - self._started)

    def _note(self, path: str, what: str, detail: str = "") -> None:
        with self._lock:
            self._incidents.append(Incident(round(time.monotonic() - self._started, 2), path, what, detail[:300]))

    def _send(self, operation: Operation, stop: threading.Event) -> None:
        first = time.monotonic()
        while not stop.is_set():
            operation.attempts += 1
            try:
                status, headers, content = self.client.request("POST", operation.path, operation.body, operation.key)
            except (OSError, http.client.HTTPException) as error:
                self._note(operation.path, type(error).__name__, str(error))
                headers, status = {}, 0
            else:
                if status == 409 and _code(content) == IN_PROGRESS:
                    pass  # the first attempt is still running: ask again
                elif status in RETRIED_STATUSES:
                    what = str(status)
                    if status == 503 and "retry-after" not in headers:
                        what = "503 without Retry-After"
                    self._note(operation.path, what, content.decode(errors="replace"))
                else:
                    operation.status = status
                    operation.answer = json.loads(content) if content else None
                    return
            if time.monotonic() - first > self.give_up_after:
                operation.unanswered = f"no definitive answer after {operation.attempts} attempts"
                return
            stop.wait(_retry_after(headers, operation.attempts))
        operation.unanswered = "stopped"
