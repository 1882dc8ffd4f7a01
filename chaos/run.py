"""One scenario, start to finish: serve the bank, open the scenario's accounts, drive the load
while the faults strike, wait for the bank to finish, stop it, and check what it did."""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from chaos import checks, load
from chaos.faults import FaultRunner
from chaos.provider import PushProvider, emailed_keys
from chaos.scenarios import DISPATCH, Scenario
from chaos.stack import Bank, Network, Stack, say, wait_until
from fintech.faults import CRASH_STATUS
from tests.factories import new_cpf

ACCOUNTS = 12


class Runner:
    """Runs one scenario after another against the stack. Scenarios that serve the bank alike
    share one running bank (starting one costs a fifth of a scenario); it is started again
    whenever a scenario serves it otherwise. `close()` stops it."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        var_dir: Path,
        stack: Stack,
        provider: PushProvider,
        token: str,
        processes: list[str],
        options: argparse.Namespace,
        stop: threading.Event,
    ) -> None:
        self.env = env
        self.var_dir = var_dir
        self.stack = stack
        self.provider = provider
        self.token = token
        self.processes = processes
        self.options = options
        self.stop = stop
        self.groups = checks.consumer_groups(processes)
        self.bank: Bank | None = None
        self.banks = 0
        self.network = Network(env, var_dir)

    def scenario(self, scenario: Scenario) -> checks.Row:
        say(f"--- {scenario.name}: {scenario.what}")
        began = time.monotonic()
        row = checks.Row(scenario=scenario.name, faults="none")
        try:
            self._run(scenario, row)
        except Exception as error:  # noqa: BLE001 - a scenario that could not run fails alone
            say(f"  {scenario.name} could not run: {error!r}")
            row.problems.append(f"could not run: {type(error).__name__}: {str(error)[:300]}")
        row.seconds = time.monotonic() - began
        checks.say_row(row)
        return row

    def _bank_for(self, scenario: Scenario) -> Bank:
        """A running bank served as the scenario wants it, with every process up."""
        env = self.env | DISPATCH[scenario.dispatch] | dict(scenario.settings)
        if self.bank is not None and self.bank.env != env:
            self.close()
        if self.bank is None:
            self.banks += 1
            self.bank = Bank(env, self.var_dir, f"{self.banks}-{scenario.name}")
            self.bank.start()
        bank = self.bank
        # The last scenario's faults may have left a process waiting out its restart backoff.
        wait_until(
            lambda: bank.healthy() and all(child["running"] for child in bank.status().get("children", {}).values()),
            timeout=90,
            what="every process of the bank running",
        )
        return bank

    def shutdown(self) -> None:
        """Stop the bank and the payment network."""
        self.close()
        self.network.stop()

    def close(self) -> None:
        if self.bank is not None:
            self.bank.stop()
            errors = self.bank.log_text().count('"level": "ERROR"')
            say(f"  bank stopped; its log ({self.bank.log_path}) holds {errors} ERROR lines")
            self.bank = None

    def _run(self, scenario: Scenario, row: checks.Row) -> None:
        for service in (self.stack.postgres, self.stack.kafka):
            service.start()  # a server that a failed restart left down comes back first
        self.network.ensure_running()
        seconds = float(self.options.seconds)
        bank = self._bank_for(scenario)
        restarts_before, log_start = bank.restarts(), len(bank.log_text())
        servers = {"postgres": self.stack.postgres, "kafka": self.stack.kafka}
        faults = FaultRunner(scenario.faults, seconds, bank, servers)
        marks = checks.Marks.now()
        client = load.Client(bank.port, self.token)
        accounts = open_accounts(client, ACCOUNTS)
        operations = load.plan(
            scenario.load,
            accounts,
            transfers=int(self.options.transfers),
            seconds=seconds,
            seed=int(self.options.seed) + len(scenario.name),
        )
        say(f"  {len(operations)} requests over {seconds:.0f}s; faults: {scenario.fault_names}")
        faults.start(self.stop)
        try:
            report = load.Driver(client, clients=int(self.options.clients)).run(operations, stop=self.stop)
        finally:
            faults.join()
        say(f"  load done in {report.seconds:.0f}s; waiting for the bank to finish its work")
        unquiet = checks.wait_until_quiet(
            marks,
            accounts,
            self.groups,
            timeout=float(self.options.settle),
            resolve_reviews=lambda held: approve(client, held),
            tend=self.network.ensure_running,  # a broker restart may have ended the network
        )
        restarts = {name: n - restarts_before.get(name, 0) for name, n in bank.restarts().items()}
        row.restarts = ", ".join(f"{name} {n}" for name, n in sorted(restarts.items()) if n) or "none"
        row.faults = faults.summary()
        if "FINTECH_CRASH_AT" in bank.env:
            died = crashes(bank.log_text()[log_start:])
            row.faults = "os._exit at crash points: " + (", ".join(f"{who} x{n}" for who, n in died.items()) or "none")
        if unquiet is not None:
            row.problems.append(f"not finished {self.options.settle:.0f}s after the load: {unquiet}")
        row.problems.extend(f"fault not struck: {error}" for error in faults.errors)
        checks.check(
            row,
            marks,
            accounts,
            report,
            reconcile=lambda: reconcile(bank),
            pushed=self.provider.keys,
            emailed=emailed_keys(self.var_dir / "mail"),
        )


def crashes(log: str) -> dict[str, int]:
    """The processes that died at a crash point (exit status 86), from the bank's log: the
    supervisor's children, and gunicorn's workers (which gunicorn restarts itself)."""
    died: dict[str, int] = {}
    for line in log.splitlines():
        try:
            entry = json.loads(line) if line.startswith("{") else {}
        except ValueError:
            continue  # a line cut short by a kill
        if entry.get("exit_code") == CRASH_STATUS and "child" in entry:
            died[entry["child"]] = died.get(entry["child"], 0) + 1
        elif f"exited with code {CRASH_STATUS}" in str(entry.get("message", "")):
            died["web worker"] = died.get("web worker", 0) + 1
    return died


def reconcile(bank: Bank) -> tuple[bool, str]:
    try:
        return True, bank.manage("reconcile", "--quiet")
    except RuntimeError as error:
        return False, str(error)


def _created(client: load.Client, path: str, body: Any, key: str | None = None) -> Any:
    status, _, content = client.request("POST", path, body, key)
    if status not in (200, 201):
        raise RuntimeError(f"POST {path}: {status} {content[:500]!r}")
    return json.loads(content)


def open_accounts(client: load.Client, count: int) -> list[str]:
    """Accounts of verified customers, each funded far beyond what the load moves."""
    accounts = []
    for index in range(count):
        person = {"name": f"Cliente Caos {index}", "email": f"caos-{uuid.uuid4().hex[:10]}@example.com"}
        customer = _created(client, "/api/v1/customers", person | {"document": new_cpf()}, key=str(uuid.uuid4()))
        _created(client, f"/api/v1/customers/{customer['id']}/verify", None)
        account = str(_created(client, "/api/v1/accounts", {"customer_id": customer["id"]})["id"])
        funds = {"account_id": account, "amount": load.FUNDS, "currency": "BRL", "reference": f"funds-{uuid.uuid4()}"}
        _created(client, "/api/v1/deposits", funds, key=str(uuid.uuid4()))
        accounts.append(account)
    return accounts


def approve(client: load.Client, transfer_ids: list[str]) -> None:
    """Resume transfers held for review the way the back office does: approve each."""
    for transfer_id in transfer_ids:
        client.request("POST", f"/api/v1/fraud/reviews/{transfer_id}/approve", {"reason": "chaos run"})
