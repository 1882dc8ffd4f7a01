"""Figures 1, 2 and 5: a whole transfer through the services, what it costs the database, and
eight clients debiting one hot account. Peers: django-hordak's `Account.transfer_to` and the
PL/pgSQL floor (bench/floor.py)."""

from __future__ import annotations

import multiprocessing.synchronize
import time
import uuid
from collections import Counter

from django.conf import settings
from django.db import connection, transaction

from apps.transactions.models import Transfer
from apps.transactions.services import deposit_make, transfer_initiate
from bench import fixtures, floor
from bench.harness import (
    ClientResult,
    Row,
    Section,
    StatementCount,
    compare,
    count_statements,
    database_error_kind,
    now,
    percentile,
    run_clients,
    say,
    throughput,
)
from bench.options import Options
from outbox.models import DeadLetter, DeliveryAttempt

AMOUNT = 1  # one centavo: the funds never run out, the work is the same as for any amount


def _bank_transfer(source: uuid.UUID, destination: uuid.UUID) -> Transfer:
    return transfer_initiate(
        from_account_id=source,
        to_account_id=destination,
        amount=AMOUNT,
        currency=fixtures.CURRENCY,
        initiated_by=fixtures.BENCH_ACTOR,
    )


def _bank_clients(pairs: list[tuple[uuid.UUID, uuid.UUID]], count: int, warm_up: int) -> list[ClientResult]:
    def work(index: int, barrier: multiprocessing.synchronize.Barrier, result: ClientResult) -> None:
        source, destination = pairs[index]
        for _ in range(warm_up):
            _bank_transfer(source, destination)
        barrier.wait()
        result.started = now()
        for _ in range(count):
            began = now()
            made = _bank_transfer(source, destination)
            result.latencies.append(now() - began)
            result.ids.append(str(made.id))
        result.finished = now()

    return run_clients(len(pairs), work)


def _not_completed(results: list[ClientResult]) -> Counter[str]:
    ids = [uuid.UUID(i) for r in results for i in r.ids]
    states: Counter[str] = Counter()
    for offset in range(0, len(ids), 1000):
        for status in Transfer.objects.filter(id__in=ids[offset : offset + 1000]).values_list("status", flat=True):
            states[status] += 1
    states["missing"] = len(ids) - sum(states.values())
    return Counter({status: n for status, n in states.items() if status != Transfer.Status.COMPLETED and n})


def _hordak_client(count: int, warm_up: int) -> list[ClientResult]:
    from hordak.models import Account
    from moneyed import Money

    tag = uuid.uuid4().hex[:8]
    source = Account.objects.create(name=f"bench {tag} a", type=Account.TYPES.asset, currencies=["BRL"])
    destination = Account.objects.create(name=f"bench {tag} b", type=Account.TYPES.asset, currencies=["BRL"])
    amount = Money(AMOUNT, "BRL")

    def one() -> None:
        # transfer_to writes a transaction and two legs; its balance check is a deferred
        # trigger, so it runs in a transaction block, as hordak's docs call it.
        with transaction.atomic():
            source.transfer_to(destination, amount)

    def work(index: int, barrier: multiprocessing.synchronize.Barrier, result: ClientResult) -> None:
        for _ in range(warm_up):
            one()
        barrier.wait()
        result.started = now()
        for _ in range(count):
            began = now()
            one()
            result.latencies.append(now() - began)
        result.finished = now()

    return run_clients(1, work)


def _floor_clients(pairs: list[tuple[int, int]], count: int, warm_up: int) -> list[ClientResult]:
    def work(index: int, barrier: multiprocessing.synchronize.Barrier, result: ClientResult) -> None:
        source, destination = pairs[index]
        for _ in range(warm_up):
            floor.transfer(source, destination, AMOUNT)
        barrier.wait()
        result.started = now()
        for _ in range(count):
            began = now()
            floor.transfer(source, destination, AMOUNT)
            result.latencies.append(now() - began)
        result.finished = now()

    return run_clients(len(pairs), work)


def _rate(results: list[ClientResult]) -> float:
    operations, wall = throughput(results)
    return operations / wall


def _p99_ms(results: list[ClientResult]) -> float:
    return percentile([x for r in results for x in r.latencies], 99) * 1000


def run_transfers(options: Options, section: Section) -> None:
    if settings.FINTECH_EVENT_DISPATCH != "inline":
        raise RuntimeError("figure 1 runs the whole choreography in process: FINTECH_EVENT_DISPATCH=inline")
    fixtures.fresh_spine()
    clients = options.clients
    funds = 100 * (options.warm_up + max(options.transfers, options.transfers_per_client))
    say(f"transfers: opening {2 * clients} funded accounts through the services")
    accounts = fixtures.funded_accounts(2 * clients, balance=funds, label="transfer")
    pairs = [(accounts[2 * i], accounts[2 * i + 1]) for i in range(clients)]

    say(f"transfers: the bank, 1 client, {options.transfers} transfers")
    one = _bank_clients(pairs[:1], options.transfers, options.warm_up)
    say(f"transfers: the bank, {clients} clients, {options.transfers_per_client} transfers each")
    many = _bank_clients(pairs, options.transfers_per_client, options.warm_up)
    unfinished = _not_completed(one + many)
    if unfinished:
        section.note(f"NOT every transfer completed: {dict(unfinished)}")
    else:
        section.note(f"every measured transfer ended `completed` ({sum(len(r.ids) for r in one + many)} checked)")

    say(f"transfers: django-hordak transfer_to, 1 client, {options.hordak_transfers} transfers")
    hordak = _hordak_client(options.hordak_transfers, options.warm_up)

    floor.install()
    floor_accounts = floor.open_accounts(2 * clients, balance=10 * options.floor_transfers)
    floor_pairs = [(floor_accounts[2 * i], floor_accounts[2 * i + 1]) for i in range(clients)]
    say(f"transfers: PL/pgSQL floor, 1 client, {options.floor_transfers} transfers")
    floor_one = _floor_clients(floor_pairs[:1], options.floor_transfers, options.warm_up)
    per_client = max(options.floor_transfers // 2, 1)
    say(f"transfers: PL/pgSQL floor, {clients} clients, {per_client} transfers each")
    floor_many = _floor_clients(floor_pairs, per_client, options.warm_up)

    bank_1, bank_n = _rate(one), _rate(many)
    hordak_1, floor_1, floor_n = _rate(hordak), _rate(floor_one), _rate(floor_many)
    ratio = compare(bank_1, hordak_1)
    section.add(
        Row(
            "Full transfer via services (hold, screen, post, complete, events), 1 client",
            bank_1,
            "transfers/s",
            "django-hordak transfer_to, 1 client",
            hordak_1,
            ratio,
            ">= 3x hordak",
            ratio is not None and ratio >= 3,
            f"p99 {_p99_ms(one):.1f} ms; hordak p99 {_p99_ms(hordak):.1f} ms",
        )
    )
    ratio = compare(bank_1, floor_1)
    section.add(
        Row(
            "Full transfer via services, 1 client",
            bank_1,
            "transfers/s",
            "PL/pgSQL floor, 1 client",
            floor_1,
            ratio,
            ">= 0.3x floor",
            ratio is not None and ratio >= 0.3,
            f"floor p99 {_p99_ms(floor_one):.2f} ms",
        )
    )
    ratio = compare(bank_n, floor_n)
    section.add(
        Row(
            f"Full transfer via services, {clients} clients",
            bank_n,
            "transfers/s",
            f"PL/pgSQL floor, {clients} clients",
            floor_n,
            ratio,
            ">= 0.3x floor",
            ratio is not None and ratio >= 0.3,
            f"p99 {_p99_ms(many):.1f} ms; floor p99 {_p99_ms(floor_many):.2f} ms",
        )
    )
    section.note(
        f"Clients are processes with a connection each; each client moves {AMOUNT} centavo between its own two "
        "accounts (no lock is shared between clients). The bank's figure is transfer_initiate() with "
        "FINTECH_EVENT_DISPATCH=inline: the call returns after the handlers screened, posted and completed it."
    )
    section.note(
        "django-hordak 2.0.0: `Account.transfer_to` inside transaction.atomic (one transaction row, two legs; "
        "its balance trigger is deferred to the commit; it neither locks nor checks funds)."
    )


def _describe(count: StatementCount) -> str:
    verbs = ", ".join(f"{verb} {n}" for verb, n in count.by_verb.most_common())
    return (
        f"{count.statements} statements ({verbs}), {count.savepoints} savepoint commands, "
        f"{count.begins} BEGIN, {count.commits} COMMIT + {count.autocommit_statements} autocommit statements "
        f"= {count.transactions_committed} commits (pg_stat_database.xact_commit delta: {count.pg_xact_commit}), "
        f"{count.round_trips} round trips"
    )


def run_statements(options: Options, section: Section) -> None:
    if connection.vendor != "postgresql":
        raise RuntimeError("the statement count is taken on PostgreSQL")
    fixtures.fresh_spine()
    source, destination = fixtures.funded_accounts(2, balance=1_000, label="count")
    _bank_transfer(source, destination)  # the first one pays for cold caches and lazy imports
    counts: list[StatementCount] = []
    for _ in range(max(options.counted_transfers, 1)):
        with count_statements() as counted:
            made = _bank_transfer(source, destination)
        made.refresh_from_db()
        if made.status != Transfer.Status.COMPLETED:
            section.note(f"the counted transfer ended {made.status}, not completed")
        counts.append(counted)
    bank = counts[-1]
    if len({(c.statements, c.transactions_committed) for c in counts}) != 1:
        section.note("the counted transfers differ: " + "; ".join(_describe(c) for c in counts))

    from hordak.models import Account
    from moneyed import Money

    a = Account.objects.create(name=f"bench {uuid.uuid4().hex[:8]}", type=Account.TYPES.asset, currencies=["BRL"])
    b = Account.objects.create(name=f"bench {uuid.uuid4().hex[:8]}", type=Account.TYPES.asset, currencies=["BRL"])
    with transaction.atomic():
        a.transfer_to(b, Money(AMOUNT, "BRL"))
    with count_statements() as hordak, transaction.atomic():
        a.transfer_to(b, Money(AMOUNT, "BRL"))

    floor.install()
    x, y = floor.open_accounts(2, balance=100)
    floor.transfer(x, y, AMOUNT)
    with count_statements() as floored:
        floor.transfer(x, y, AMOUNT)

    section.add(
        Row(
            "SQL statements per transfer (services, inline choreography)",
            bank.statements,
            "statements",
            "hordak / PL/pgSQL floor",
            hordak.statements,
            None,
            "<= 20",
            bank.statements <= 20,
            f"floor: {floored.statements}; plus {bank.savepoints} savepoint commands and {bank.begins} BEGIN",
        )
    )
    section.add(
        Row(
            "Commits per transfer",
            bank.transactions_committed,
            "commits",
            "hordak / PL/pgSQL floor",
            hordak.transactions_committed,
            None,
            "<= 3",
            bank.transactions_committed <= 3,
            f"floor: {floored.transactions_committed}; {bank.commits} COMMIT + "
            f"{bank.autocommit_statements} autocommit statements; pg xact_commit delta {bank.pg_xact_commit}",
        )
    )
    section.note("Bank: " + _describe(bank))
    section.note("Hordak: " + _describe(hordak))
    section.note("Floor: " + _describe(floored))
    section.note(
        "Method: CaptureQueriesContext on the connection (Django 5.2 also logs BEGIN, COMMIT and ROLLBACK there, "
        "and the savepoint commands are SQL), an execute wrapper noting which statements ran in autocommit mode "
        "(each of those is a transaction that commits by itself), and PostgreSQL's own count of committed "
        "transactions for the database (pg_stat_database.xact_commit, flushed with pg_stat_force_next_flush() "
        "before and after, less the commits of reading it). Commits = COMMIT + autocommit statements."
    )
    section.attachments["statements of one transfer"] = bank.sql


def run_hot(options: Options, section: Section) -> None:
    fixtures.fresh_spine()
    clients, count = options.hot_clients, options.hot_transfers_per_client
    say(f"hot: 1 source account, {clients} destinations, {clients} clients x {count} transfers")
    # The destinations start empty; the source gets enough for every client.
    source, *destinations = fixtures.funded_accounts(clients + 1, balance=0, label="hot")
    deposit_make(
        account_id=source,
        amount=AMOUNT * clients * (count + 5) * 10,
        currency=fixtures.CURRENCY,
        reference=f"bench-hot-{uuid.uuid4()}",
        made_by=fixtures.BENCH_ACTOR,
    )
    deadlocks_before = _pg_deadlocks()

    def work(index: int, barrier: multiprocessing.synchronize.Barrier, result: ClientResult) -> None:
        destination = destinations[index]
        _bank_transfer(source, destination)  # warm-up
        barrier.wait()
        result.started = now()
        for _ in range(count):
            began = now()
            try:
                made = _bank_transfer(source, destination)
            except Exception as error:  # noqa: BLE001 - every failure is counted by kind
                result.errors[database_error_kind(error)] += 1
                continue
            result.latencies.append(now() - began)
            result.ids.append(str(made.id))
        result.finished = now()

    results = run_clients(clients, work)
    time.sleep(1.0)  # a backend's statistics are flushed when it exits, not when its client does
    deadlocks = _pg_deadlocks() - deadlocks_before
    errors: Counter[str] = Counter()
    for result in results:
        errors.update(result.errors)
    client_deadlocks = errors.get("deadlock", 0)
    unfinished = _not_completed(results)
    handler_failures = DeliveryAttempt.objects.count() + DeadLetter.objects.count()
    rate = _rate(results)
    p99 = _p99_ms(results)
    section.add(
        Row(
            f"Hot account: {clients} clients debiting one account",
            rate,
            "transfers/s",
            target=">= 200/s",
            met=rate >= 200,
            note=f"p99 {p99:.1f} ms",
        )
    )
    section.add(Row("Hot account: p99 latency", p99, "ms", note=f"p50 {_p50_ms(results):.1f} ms"))
    section.add(
        Row(
            "Hot account: deadlocks",
            deadlocks,
            "deadlocks",
            target="0",
            met=deadlocks == 0 and client_deadlocks == 0,
            note=f"PostgreSQL's count (pg_stat_database.deadlocks delta); caught by clients: {client_deadlocks}",
        )
    )
    if errors:
        section.note(f"hot account: failed transfers by kind: {dict(errors)}")
    if unfinished:
        section.note(f"hot account: transfers not completed: {dict(unfinished)}")
    if handler_failures:
        section.note(f"hot account: {handler_failures} handler deliveries failed (retry or dead-letter rows)")


def _p50_ms(results: list[ClientResult]) -> float:
    return percentile([x for r in results for x in r.latencies], 50) * 1000


def _pg_deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        row = cursor.fetchone()
    return int(row[0]) if row else 0
