"""Figure 7: the balance and the first statement page of accounts with 1,000,000 entries,
timed at the server, against the bare SQL of the same reads.

Two accounts, each credited N times by one counterparty account of the bank's own (an asset
that may go negative, like settlement), so each fill is N journal transactions of two entries:

- dense: the account's N entries are contiguous in the table (written in id order, the
  account's first, then the counterparty's): its newest page sits on one or two heap pages.
- sparse: the account's entries and the counterparty's are interleaved (ids 2i-1 and 2i) and
  written to the heap in random order, with their posting times spread over five years: the
  newest page's entries lie on as many different heap pages, far apart, as an account's do
  when its entries are interleaved with many other accounts' over years. (Interleaving
  literally with 50 other accounts would need 50 times the rows for the same effect.)

Each fill is one transaction of set-based statements (generate_series): the journal
transactions, then all the entries in one INSERT (so the ledger's trigger finds every journal
transaction balanced), then the two cached balances, so `manage.py reconcile` still passes.
The filled accounts are kept and reused by later runs (a table `bench_reads_fill` remembers
them); the output says when they were.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from django.db import connection, transaction
from django.test import Client

from apps.ledger import services as ledger
from apps.ledger.models import LedgerAccount, Side
from bench import fixtures
from bench.harness import Row, Section, compare, now, percentile, say
from bench.options import Options
from fintech.auth.tokens import issue_dev_token

AMOUNT = 100
KINDS = ("dense", "sparse")

MARKER = """
CREATE TABLE IF NOT EXISTS bench_reads_fill (
    kind text PRIMARY KEY,
    account_id uuid NOT NULL,
    ledger_account_id uuid NOT NULL,
    entries bigint NOT NULL,
    built_at timestamptz NOT NULL,
    seconds double precision NOT NULL
)"""

JOURNAL = """
INSERT INTO ledger_journaltransaction (id, posting_key, kind, reference, description, reverses_id, posted_at)
SELECT md5(%(tag)s || ':' || i)::uuid, %(tag)s || ':' || i, 'adjustment', 'bench-fill',
       'Bench fill ' || i, NULL, %(start)s::timestamptz + (i::bigint * %(step)s::bigint) * interval '1 microsecond'
  FROM generate_series(1, %(n)s) AS i
"""

# Leg 0 credits the account, leg 1 debits the counterparty; balance_after runs with i.
ENTRIES = """
INSERT INTO ledger_journalentry (id, entry_id, transaction_id, account_id, side, amount, currency,
                                 balance_after, posted_at)
SELECT CASE WHEN %(sparse)s THEN %(base)s::bigint + 2 * i - 1 + leg ELSE %(base)s::bigint + leg * %(n)s + i END,
       gen_random_uuid(), md5(%(tag)s || ':' || i)::uuid,
       CASE WHEN leg = 0 THEN %(account)s::uuid ELSE %(counterparty)s::uuid END,
       CASE WHEN leg = 0 THEN 'credit' ELSE 'debit' END,
       %(amount)s, 'BRL',
       CASE WHEN leg = 0 THEN %(account_balance)s::bigint ELSE %(counterparty_balance)s::bigint END
           + i::bigint * %(amount)s::bigint,
       %(start)s::timestamptz + (i::bigint * %(step)s::bigint) * interval '1 microsecond'
  FROM generate_series(1, %(n)s) AS i CROSS JOIN (VALUES (0), (1)) AS legs (leg)
 ORDER BY CASE WHEN %(sparse)s THEN random() ELSE leg * %(n)s + i END
"""

DEFINITION = (
    "Dense: the account's 1,000,000 entries are contiguous in the journal (written in id order, then its "
    "counterparty's), 1 ms apart. Sparse: the account's entries and its counterparty's are interleaved (ids 2i-1 "
    "and 2i) and written to the heap in random order, posted over five years, so the newest page's 50 entries "
    "lie on 50 different heap pages far apart, as they do for an account whose entries are interleaved with "
    "many other accounts' over years. Both fills are set-based SQL (generate_series) in one transaction each: "
    "the journal transactions, all entries in one INSERT (the ledger's trigger finds every journal transaction "
    "balanced), then the cached balances, so reconcile passes; the journal is then VACUUM ANALYZEd."
)
BALANCE_SQL = "SELECT balance, held, currency FROM ledger_ledgeraccount WHERE owner_ref = %s"
# The statement selector's own SQL (apps/ledger/selectors.py): the account named as `= ANY(array)`
# and ordered by (account, id), which keeps the planner on the account's index; with
# `account_id = X ORDER BY id` it may walk the journal's primary key backwards past every newer
# entry of other accounts (seconds at 1,000,000 entries).
STATEMENT_SQL = """
SELECT e.id, e.entry_id, e.transaction_id, e.side, e.amount, e.currency, e.balance_after, e.posted_at,
       t.description, t.kind
  FROM ledger_journalentry e JOIN ledger_journaltransaction t ON t.id = e.transaction_id
 WHERE e.account_id = ANY(%s) ORDER BY e.account_id DESC, e.id DESC LIMIT 51
"""


@dataclass
class Filled:
    kind: str
    account_id: uuid.UUID
    ledger_account_id: uuid.UUID
    entries: int
    reused: bool
    seconds: float


def _existing(kind: str, entries: int) -> Filled | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT account_id, ledger_account_id, entries, seconds FROM bench_reads_fill WHERE kind = %s", [kind]
        )
        row = cursor.fetchone()
    if row is None or int(row[2]) != entries:
        return None
    return Filled(kind, row[0], row[1], int(row[2]), True, float(row[3]))


def _fill(kind: str, entries: int) -> Filled:
    started = time.monotonic()
    (account_id,) = fixtures.funded_accounts(1, balance=0, label=f"reads-{kind}")
    counterparty = ledger.ledger_account_open(
        code=f"bench:fill:{kind}:{uuid.uuid4().hex[:12]}",
        name=f"Bench fill counterparty ({kind})",
        account_type=LedgerAccount.Type.ASSET,
        normal_side=Side.DEBIT,
        currency=fixtures.CURRENCY,
        allow_negative=True,
        is_system=True,
    )
    tag = f"bench-fill:{kind}:{uuid.uuid4().hex[:12]}"
    five_years_us = 5 * 365 * 24 * 3600 * 10**6
    step = five_years_us // entries if kind == "sparse" else 1000  # sparse: 5 years; dense: 1 ms apart
    with transaction.atomic(), connection.cursor() as cursor:
        account = LedgerAccount.objects.select_for_update().get(owner_ref=account_id)
        other = LedgerAccount.objects.select_for_update().get(pk=counterparty.pk)
        cursor.execute("SELECT pg_get_serial_sequence('ledger_journalentry', 'id')")
        (sequence,) = cursor.fetchone() or ("",)
        cursor.execute("SELECT nextval(%s)", [sequence])
        (base,) = cursor.fetchone() or (0,)
        # Reserve the 2N ids this fill writes explicitly; later inserts continue after them.
        cursor.execute("SELECT setval(%s, %s)", [sequence, base + 2 * entries])
        cursor.execute("SELECT now() - make_interval(secs => %s)", [(entries * step) / 10**6 + 60])
        (start,) = cursor.fetchone() or (None,)
        params = {
            "tag": tag,
            "n": entries,
            "step": step,
            "start": start,
            "base": base,
            "sparse": kind == "sparse",
            "account": str(account.id),
            "counterparty": str(other.id),
            "amount": AMOUNT,
            "account_balance": account.balance,
            "counterparty_balance": other.balance,
        }
        say(f"reads: writing {entries:,} journal transactions for the {kind} account")
        cursor.execute(JOURNAL, params)
        say(f"reads: writing {2 * entries:,} entries ({kind})")
        cursor.execute(ENTRIES, params)
        for row in (account, other):
            row.balance += entries * AMOUNT
            row.save(update_fields=["balance", "updated_at"])
        cursor.execute(MARKER)
        cursor.execute(
            "INSERT INTO bench_reads_fill VALUES (%s, %s, %s, %s, now(), %s) ON CONFLICT (kind) DO UPDATE SET "
            "account_id = EXCLUDED.account_id, ledger_account_id = EXCLUDED.ledger_account_id, "
            "entries = EXCLUDED.entries, built_at = EXCLUDED.built_at, seconds = EXCLUDED.seconds",
            [kind, account_id, account.id, entries, time.monotonic() - started],
        )
    say("reads: VACUUM ANALYZE of the journal")
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) ledger_journalentry")
        cursor.execute("VACUUM (ANALYZE) ledger_journaltransaction")
        # The whole build: the commit's deferred foreign-key checks and the VACUUM included.
        seconds = time.monotonic() - started
        cursor.execute("UPDATE bench_reads_fill SET seconds = %s WHERE kind = %s", [seconds, kind])
    return Filled(kind, account_id, account.id, entries, False, seconds)


def _books_hold(filled: Filled) -> str:
    """The account's cached balance equals the sum of its entries and its last balance_after."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT a.balance,
                      (SELECT coalesce(sum(CASE WHEN e.side = a.normal_side THEN e.amount ELSE -e.amount END), 0)
                         FROM ledger_journalentry e WHERE e.account_id = a.id),
                      (SELECT e.balance_after FROM ledger_journalentry e WHERE e.account_id = a.id
                        ORDER BY e.id DESC LIMIT 1),
                      (SELECT count(*) FROM ledger_journalentry e WHERE e.account_id = a.id)
                 FROM ledger_ledgeraccount a WHERE a.id = %s""",
            [filled.ledger_account_id],
        )
        row = cursor.fetchone()
    if row is None:
        return "missing"
    balance, total, last, count = (int(v or 0) for v in row)
    if balance == total == last:
        return f"ok ({count:,} entries, balance {balance:,} = sum of entries = last balance_after)"
    return f"BROKEN: balance {balance}, sum of entries {total}, last balance_after {last}"


def _timed(client: Client, path: str, runs: int, bound: float) -> list[float]:
    """Up to `runs` timed requests, stopping after `bound` seconds (a slow plan must not hold
    the whole benchmark: the figure then says how few requests it took)."""
    stop = now() + 5
    for _ in range(min(50, runs)):  # warm-up: connections, caches, lazy imports
        client.get(path)
        if now() > stop:
            break
    times: list[float] = []
    stop = now() + bound
    for _ in range(runs):
        if times and now() > stop:
            break
        began = now()
        response = client.get(path)
        times.append(now() - began)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}: {response.content[:300]!r}")
    return times


def _explained(sql: str, params: list[uuid.UUID] | list[list[uuid.UUID]], runs: int, bound: float) -> list[float]:
    """Planning plus execution time, as PostgreSQL measures them, for `runs` runs (after 2
    not counted), stopping after `bound` seconds."""
    times: list[float] = []
    stop = now() + bound
    with connection.cursor() as cursor:
        for _ in range(runs + 2):
            if len(times) > 2 and now() > stop:
                break
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            row = cursor.fetchone()
            plan = row[0] if row else []
            plan = json.loads(plan) if isinstance(plan, str) else plan
            times.append((float(plan[0]["Planning Time"]) + float(plan[0]["Execution Time"])) / 1000)
    return times[2:]


def _plan(sql: str, params: list[list[uuid.UUID]]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return [str(row[0]) for row in cursor.fetchall()]


def run_reads(options: Options, section: Section) -> None:
    if connection.vendor != "postgresql":
        raise RuntimeError("the reads section runs on PostgreSQL")
    with connection.cursor() as cursor:
        cursor.execute(MARKER)
    filled = []
    for kind in KINDS:
        existing = _existing(kind, options.reads_entries)
        if existing is None:
            say(f"reads: filling the {kind} account with {options.reads_entries:,} entries (kept for later runs)")
            existing = _fill(kind, options.reads_entries)
        filled.append(existing)
        how = (
            f"reused from an earlier run (built in {existing.seconds:.0f} s)"
            if existing.reused
            else f"built by this run in {existing.seconds:.0f} s"
        )
        section.note(f"{kind} account {existing.account_id}: {how}; books: {_books_hold(existing)}")

    token = issue_dev_token(subject="bench-reads", scopes="accounts:read")
    client = Client(headers={"Authorization": f"Bearer {token}"})
    runs = options.reads_requests
    plans: dict[str, list[str]] = {}
    for item in filled:
        bound = options.reads_seconds
        say(f"reads: {item.kind}: GET balance and statement, up to {runs} each or {bound} s")
        balance = _timed(client, f"/api/v1/accounts/{item.account_id}", runs, bound)
        statement = _timed(client, f"/api/v1/accounts/{item.account_id}/statement", runs, bound)
        bare_balance = _explained(BALANCE_SQL, [item.account_id], options.reads_sql_runs, bound)
        bare_statement = _explained(STATEMENT_SQL, [[item.ledger_account_id]], options.reads_sql_runs, bound)
        plans[item.kind] = _plan(STATEMENT_SQL, [[item.ledger_account_id]])
        p99 = percentile(balance, 99) * 1000
        peer = percentile(bare_balance, 99) * 1000
        section.add(
            Row(
                f"GET /accounts/{{id}} (balance), {item.kind} account, p99 at the server",
                p99,
                "ms",
                "bare SQL (EXPLAIN ANALYZE), p99",
                peer,
                compare(p99, peer),
                "<= 5 ms",
                p99 <= 5,
                f"p50 {percentile(balance, 50) * 1000:.2f} ms over {len(balance)} requests; "
                f"SQL runs {len(bare_balance)}",
            )
        )
        p99 = percentile(statement, 99) * 1000
        peer = percentile(bare_statement, 99) * 1000
        section.add(
            Row(
                f"GET /accounts/{{id}}/statement (first page, 50), {item.kind} account, p99 at the server",
                p99,
                "ms",
                "bare SQL (EXPLAIN ANALYZE), p99",
                peer,
                compare(p99, peer),
                "<= 20 ms",
                p99 <= 20,
                f"p50 {percentile(statement, 50) * 1000:.2f} ms over {len(statement)} requests; "
                f"SQL runs {len(bare_statement)}",
            )
        )
    section.note(
        "At the server: the WSGI application in this process (django.test.Client, the whole middleware stack, "
        "token check, DRF, rendering; no socket), timed around each request, DEBUG off. The bare SQL is the "
        "balance row by owner_ref and the statement page (entries joined to their journal transactions, newest "
        "51), timed by PostgreSQL (planning + execution, EXPLAIN ANALYZE), so the ratio is the bank's time over "
        "the database's time for the same read."
    )
    section.note(DEFINITION)
    for kind, plan in plans.items():
        section.attachments[f"plan of the statement page, {kind} account (EXPLAIN ANALYZE)"] = plan
