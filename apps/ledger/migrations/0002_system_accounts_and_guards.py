"""The bank's own ledger accounts, and database guards that keep posted rows immutable and
every journal transaction balanced even against code that bypasses the services."""

import uuid

from django.db import migrations
from django.utils import timezone

SYSTEM_CURRENCIES = ["BRL", "USD", "EUR"]
SYSTEM_ACCOUNTS = [
    # purpose, type, normal side
    ("settlement", "asset", "debit"),
    ("clearing", "liability", "credit"),
    ("fees", "income", "credit"),
    ("suspense", "liability", "credit"),
]


def open_system_accounts(apps, schema_editor):
    LedgerAccount = apps.get_model("ledger", "LedgerAccount")
    now = timezone.now()
    for currency in SYSTEM_CURRENCIES:
        for purpose, type_, side in SYSTEM_ACCOUNTS:
            LedgerAccount.objects.get_or_create(
                code=f"system:{purpose}:{currency}",
                defaults={
                    "id": uuid.uuid4(),
                    "name": f"{purpose.title()} ({currency})",
                    "account_type": type_,
                    "normal_side": side,
                    "currency": currency,
                    "is_system": True,
                    "allow_negative": True,
                    "created_at": now,
                    "updated_at": now,
                },
            )


POSTGRES_GUARDS = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are immutable: % on % refused (post a reversal instead)', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_journal_immutable BEFORE UPDATE OR DELETE ON ledger_journaltransaction
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- Every statement that inserts entries must leave their journal transactions balanced per
-- currency (the services insert all entries of a journal transaction in one statement).
CREATE OR REPLACE FUNCTION ledger_check_balanced() RETURNS trigger AS $$
DECLARE
    bad record;
BEGIN
    SELECT e.transaction_id, e.currency,
           SUM(CASE WHEN e.side = 'debit' THEN e.amount ELSE -e.amount END) AS net
      INTO bad
      FROM ledger_journalentry e
     WHERE e.transaction_id IN (SELECT DISTINCT transaction_id FROM new_entries)
     GROUP BY e.transaction_id, e.currency
    HAVING SUM(CASE WHEN e.side = 'debit' THEN e.amount ELSE -e.amount END) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal transaction % does not balance in %: net %', bad.transaction_id, bad.currency, bad.net
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_journalentry
    REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_balanced();
"""

POSTGRES_GUARDS_REVERSE = """
DROP TRIGGER IF EXISTS ledger_entries_balanced ON ledger_journalentry;
DROP TRIGGER IF EXISTS ledger_entries_immutable ON ledger_journalentry;
DROP TRIGGER IF EXISTS ledger_journal_immutable ON ledger_journaltransaction;
DROP FUNCTION IF EXISTS ledger_check_balanced();
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""

# SQLite (the embedded default) refuses updates; deletes stay possible there because the
# test framework empties tables with DELETE between tests.
SQLITE_GUARDS = [
    """CREATE TRIGGER IF NOT EXISTS ledger_entries_immutable BEFORE UPDATE ON ledger_journalentry
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: UPDATE on ledger_journalentry refused'); END;""",
    """CREATE TRIGGER IF NOT EXISTS ledger_journal_immutable BEFORE UPDATE ON ledger_journaltransaction
       BEGIN SELECT RAISE(ABORT, 'ledger rows are immutable: UPDATE on ledger_journaltransaction refused'); END;""",
]
SQLITE_GUARDS_REVERSE = [
    "DROP TRIGGER IF EXISTS ledger_entries_immutable;",
    "DROP TRIGGER IF EXISTS ledger_journal_immutable;",
]


def install_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_GUARDS, params=None)  # no placeholders: the '%' are PL/pgSQL's
    elif vendor == "sqlite":
        for statement in SQLITE_GUARDS:
            schema_editor.execute(statement)


def remove_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_GUARDS_REVERSE, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_GUARDS_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunPython(open_system_accounts, migrations.RunPython.noop),
        migrations.RunPython(install_guards, remove_guards),
    ]
