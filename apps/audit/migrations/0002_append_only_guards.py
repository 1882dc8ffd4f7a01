"""The audit table is append-only in the database itself, against code that bypasses the
services: PostgreSQL refuses UPDATE and DELETE of its rows, SQLite refuses UPDATE.

TRUNCATE is left to the grants (the test framework empties tables with TRUNCATE between
tests on PostgreSQL, and with DELETE on SQLite): in production the application's role holds
only SELECT and INSERT on the table, and does not own it (docs/architecture.md, "Audit trail").
"""

from django.db import migrations

POSTGRES_GUARDS = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_auditrecord
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
"""

POSTGRES_GUARDS_REVERSE = """
DROP TRIGGER IF EXISTS audit_records_append_only ON audit_auditrecord;
DROP FUNCTION IF EXISTS audit_refuse_change();
"""

SQLITE_GUARDS = """
CREATE TRIGGER IF NOT EXISTS audit_records_append_only BEFORE UPDATE ON audit_auditrecord
BEGIN SELECT RAISE(ABORT, 'audit records are append-only: UPDATE on audit_auditrecord refused'); END;
"""

SQLITE_GUARDS_REVERSE = "DROP TRIGGER IF EXISTS audit_records_append_only;"


def install_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_GUARDS, params=None)  # no placeholders: the '%' are PL/pgSQL's
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_GUARDS)


def remove_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_GUARDS_REVERSE, params=None)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_GUARDS_REVERSE)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install_guards, remove_guards)]
