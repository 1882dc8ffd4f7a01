"""The PL/pgSQL floor: the least work a correct transfer can cost in this PostgreSQL.

Three tables of its own (accounts with a balance that may not go negative, transactions, and
entries with the running balance), and two functions called in one statement each:

- `bench_floor_transfer(from, to, amount)`: lock the two accounts in id order, check the
  balance, insert one transaction and two entries, update the two balances. One round trip,
  one commit.
- `bench_floor_post_batch(froms[], tos[], amounts[])`: the same for many transfers at once,
  set-based: lock every account in id order, refuse the batch if any running balance would go
  negative, then one statement inserts the transactions and entries and updates the balances.

It is what the bank's services would cost with no framework, no events and no audit: a floor
to compare against, not a competitor.
"""

from __future__ import annotations

from django.db import connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_floor_account (
    id bigserial PRIMARY KEY,
    balance bigint NOT NULL CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bench_floor_transaction (
    id bigserial PRIMARY KEY,
    posted_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS bench_floor_entry (
    id bigserial PRIMARY KEY,
    transaction_id bigint NOT NULL REFERENCES bench_floor_transaction (id),
    account_id bigint NOT NULL REFERENCES bench_floor_account (id),
    amount bigint NOT NULL CHECK (amount <> 0),
    balance_after bigint NOT NULL,
    posted_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS bench_floor_entry_by_account ON bench_floor_entry (account_id, id);
CREATE INDEX IF NOT EXISTS bench_floor_entry_by_transaction ON bench_floor_entry (transaction_id);

CREATE OR REPLACE FUNCTION bench_floor_transfer(p_from bigint, p_to bigint, p_amount bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
    v_tx bigint;
    v_from_after bigint;
    v_to_after bigint;
BEGIN
    PERFORM 1 FROM bench_floor_account WHERE id IN (p_from, p_to) ORDER BY id FOR UPDATE;
    SELECT balance INTO v_balance FROM bench_floor_account WHERE id = p_from;
    IF v_balance IS NULL OR v_balance < p_amount THEN
        RAISE EXCEPTION 'insufficient funds on %', p_from USING ERRCODE = 'P0001';
    END IF;
    INSERT INTO bench_floor_transaction (posted_at) VALUES (now()) RETURNING id INTO v_tx;
    UPDATE bench_floor_account SET balance = balance - p_amount, updated_at = now()
        WHERE id = p_from RETURNING balance INTO v_from_after;
    UPDATE bench_floor_account SET balance = balance + p_amount, updated_at = now()
        WHERE id = p_to RETURNING balance INTO v_to_after;
    INSERT INTO bench_floor_entry (transaction_id, account_id, amount, balance_after, posted_at)
        VALUES (v_tx, p_from, -p_amount, v_from_after, now()), (v_tx, p_to, p_amount, v_to_after, now());
    RETURN v_tx;
END;
$$;

CREATE OR REPLACE FUNCTION bench_floor_post_batch(p_from bigint[], p_to bigint[], p_amount bigint[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_lowest bigint;
    v_count integer;
BEGIN
    PERFORM 1 FROM bench_floor_account WHERE id = ANY (p_from || p_to) ORDER BY id FOR UPDATE;
    -- The lowest running balance any account reaches through the batch, in the batch's order.
    SELECT min(a.balance + l.running) INTO v_lowest
      FROM (SELECT account_id, sum(delta) OVER (PARTITION BY account_id ORDER BY ord, leg) AS running
              FROM (SELECT ord, 0 AS leg, f AS account_id, -amt AS delta
                      FROM unnest(p_from, p_to, p_amount) WITH ORDINALITY AS u (f, t, amt, ord)
                    UNION ALL
                    SELECT ord, 1, t, amt
                      FROM unnest(p_from, p_to, p_amount) WITH ORDINALITY AS u (f, t, amt, ord)) legs) l
      JOIN bench_floor_account a ON a.id = l.account_id;
    IF v_lowest < 0 THEN
        RAISE EXCEPTION 'insufficient funds in the batch' USING ERRCODE = 'P0001';
    END IF;
    WITH items AS MATERIALIZED (
        SELECT nextval('bench_floor_transaction_id_seq') AS tx, f, t, amt, ord
          FROM unnest(p_from, p_to, p_amount) WITH ORDINALITY AS u (f, t, amt, ord)
    ), legs AS (
        SELECT tx, ord, 0 AS leg, f AS account_id, -amt AS delta FROM items
        UNION ALL
        SELECT tx, ord, 1, t, amt FROM items
    ), running AS (
        SELECT l.tx, l.ord, l.leg, l.account_id, l.delta,
               a.balance + sum(l.delta) OVER (PARTITION BY l.account_id ORDER BY l.ord, l.leg) AS balance_after
          FROM legs l JOIN bench_floor_account a ON a.id = l.account_id
    ), transactions AS (
        INSERT INTO bench_floor_transaction (id, posted_at) SELECT tx, now() FROM items
    ), entries AS (
        INSERT INTO bench_floor_entry (transaction_id, account_id, amount, balance_after, posted_at)
        SELECT tx, account_id, delta, balance_after, now() FROM running ORDER BY ord, leg
    )
    UPDATE bench_floor_account a SET balance = a.balance + n.net, updated_at = now()
      FROM (SELECT account_id, sum(delta) AS net FROM legs GROUP BY account_id) n
     WHERE a.id = n.account_id;
    SELECT count(*) INTO v_count FROM unnest(p_from);
    RETURN v_count;
END;
$$;
"""


def install() -> None:
    with connection.cursor() as cursor:
        cursor.execute(SCHEMA)


def open_accounts(count: int, *, balance: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_floor_account (balance) SELECT %s FROM generate_series(1, %s) RETURNING id",
            [balance, count],
        )
        return sorted(int(row[0]) for row in cursor.fetchall())


def transfer(source: int, destination: int, amount: int) -> None:
    """One transfer: one statement in autocommit mode, so one round trip and one commit."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT bench_floor_transfer(%s, %s, %s)", [source, destination, amount])


def post_batch(sources: list[int], destinations: list[int], amounts: list[int]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT bench_floor_post_batch(%s, %s, %s)", [sources, destinations, amounts])
        row = cursor.fetchone()
    return int(row[0]) if row else 0
