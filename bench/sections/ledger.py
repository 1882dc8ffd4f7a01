"""Figure 3: the ledger's `post_transactions`, one journal transaction per call and batches of
1,000, against the PL/pgSQL floor posting the same transfers (one call each, and one set-based
call per batch)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence

from django.db import connection
from django.test import override_settings

from apps.ledger import services as ledger
from apps.ledger.models import JournalTransaction, LedgerAccount, Side
from bench import fixtures, floor
from bench.harness import Row, Section, compare, now, say
from bench.options import Options

AMOUNT = 1


def _requests(
    accounts: Sequence[LedgerAccount], pairs: Sequence[tuple[int, int]], tag: str
) -> list[ledger.JournalRequest]:
    # An adjustment, not a transfer: a `transfer` entry would make the transactions context
    # look for the transfer it completes. Both post through the same code.
    return [
        ledger.JournalRequest(
            posting_key=f"bench:{tag}:{index}",
            kind=JournalTransaction.Kind.ADJUSTMENT,
            reference="bench",
            postings=[
                ledger.Posting(
                    account_id=accounts[source].id, side=Side.DEBIT, amount=AMOUNT, currency=fixtures.CURRENCY
                ),
                ledger.Posting(
                    account_id=accounts[destination].id, side=Side.CREDIT, amount=AMOUNT, currency=fixtures.CURRENCY
                ),
            ],
        )
        for index, (source, destination) in enumerate(pairs)
    ]


def _pairs(count: int, accounts: int, rng: random.Random) -> list[tuple[int, int]]:
    pairs = []
    for _ in range(count):
        source = rng.randrange(accounts)
        destination = (source + rng.randrange(1, accounts)) % accounts
        pairs.append((source, destination))
    return pairs


def _post_singles(accounts: Sequence[LedgerAccount], pairs: list[tuple[int, int]]) -> float:
    requests = _requests(accounts, pairs, uuid.uuid4().hex)
    started = now()
    for request in requests:
        ledger.post_transactions([request])
    return len(requests) / (now() - started)


def _post_batches(accounts: Sequence[LedgerAccount], batches: list[list[tuple[int, int]]]) -> float:
    prepared = [_requests(accounts, batch, uuid.uuid4().hex) for batch in batches]
    started = now()
    for requests in prepared:
        ledger.post_transactions(requests)
    return sum(len(r) for r in prepared) / (now() - started)


def run_ledger(options: Options, section: Section) -> None:
    if connection.vendor != "postgresql":
        raise RuntimeError("the ledger section runs on PostgreSQL")
    fixtures.fresh_spine()
    rng = random.Random(7)
    size = options.ledger_batch_size
    count = options.ledger_accounts
    funds = 10 * (options.ledger_single + options.ledger_batches * size) * AMOUNT
    say(f"ledger: {count} funded customer ledger accounts")
    accounts = fixtures.ledger_accounts(count, balance=funds)
    floor.install()
    floor_ids = floor.open_accounts(count, balance=funds)

    singles = _pairs(options.ledger_single, count, rng)
    batches = [_pairs(size, count, rng) for _ in range(options.ledger_batches)]
    _post_singles(accounts, singles[:20])  # warm-up, not counted
    _post_batches(accounts, [batches[0][:100]])

    say(f"ledger: post_transactions, 1 per call x {len(singles)}")
    single = _post_singles(accounts, singles)
    say(f"ledger: post_transactions, {len(batches)} batches of {size}")
    batched = _post_batches(accounts, batches)
    with override_settings(FINTECH_EVENT_DISPATCH="worker"):
        say("ledger: the same batches with the events left in the outbox (no dispatch after commit)")
        batched_post_only = _post_batches(accounts, batches)
        single_post_only = _post_singles(accounts, singles[: max(len(singles) // 2, 1)])
    fixtures.fresh_spine()  # the undelivered events of the run above are the benchmark's own

    say("ledger: PL/pgSQL floor, 1 per call and batched")
    started = now()
    for source, destination in singles:
        floor.transfer(floor_ids[source], floor_ids[destination], AMOUNT)
    floor_single = len(singles) / (now() - started)
    started = now()
    for batch in batches:
        floor.post_batch([floor_ids[s] for s, _ in batch], [floor_ids[d] for _, d in batch], [AMOUNT] * len(batch))
    floor_batched = options.ledger_batches * size / (now() - started)

    section.add(
        Row(
            "post_transactions, 1 journal transaction per call (events dispatched inline)",
            single,
            "journal tx/s",
            "PL/pgSQL floor, 1 transfer per call",
            floor_single,
            compare(single, floor_single),
            note=f"events left to a worker: {single_post_only:,.0f}/s",
        )
    )
    ratio = compare(batched, floor_batched)
    section.add(
        Row(
            f"post_transactions, batches of {size:,} (events dispatched inline)",
            batched,
            "journal tx/s",
            f"PL/pgSQL floor, one set-based call per {size:,}",
            floor_batched,
            ratio,
            ">= 5,000/s and >= 0.5x floor",
            batched >= 5000 and ratio is not None and ratio >= 0.5,
        )
    )
    ratio = compare(batched_post_only, floor_batched)
    section.add(
        Row(
            f"post_transactions, batches of {size:,}, events left in the outbox (FINTECH_EVENT_DISPATCH=worker)",
            batched_post_only,
            "journal tx/s",
            "PL/pgSQL floor, batched",
            floor_batched,
            ratio,
            ">= 5,000/s and >= 0.5x floor",
            batched_post_only >= 5000 and ratio is not None and ratio >= 0.5,
        )
    )
    section.note(
        f"{count} customer ledger accounts; each journal transaction debits one and credits another "
        f"(random pairs, {AMOUNT} centavo, kind `adjustment`), 2 entries, funds checked under the locks. "
        "With FINTECH_EVENT_DISPATCH=inline every call also delivers its ledger.entry_written events after the "
        "commit (one inbox record per handler and event); the `worker` rows show the posting alone."
    )
    section.note(
        "The floor posts the same pairs into its own tables: bench_floor_transfer() per transfer, and "
        "bench_floor_post_batch() per batch (lock in id order, check every running balance, then one statement "
        "inserts the transactions and entries and updates the balances)."
    )
