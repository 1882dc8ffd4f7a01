"""The migration that encrypts personal data converts the rows that existed before it."""

import uuid
from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.customers.models import Customer
from apps.customers.selectors import customer_find_by_document

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("customers", "0001_initial")]
AFTER = [("customers", "0002_personal_data_encrypted")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def raw_values(customer_id):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT email, document, birth_date FROM customers_customer WHERE id = %s",
            [Customer._meta.pk.get_db_prep_value(customer_id, connection)],
        )
        return cursor.fetchone()


def test_existing_plaintext_is_encrypted_and_indexed_then_decrypted_backwards():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("customers")
    try:
        old_apps = migrate(BEFORE)
        OldCustomer = old_apps.get_model("customers", "Customer")
        ana = OldCustomer.objects.create(
            id=uuid.uuid4(),
            name="Ana",
            email="ana@example.com",
            document_type="cpf",
            document="52998224725",
            birth_date=date(1990, 4, 1),
        )
        bruno = OldCustomer.objects.create(
            id=uuid.uuid4(), name="Bruno", email="bruno@example.com", document_type="cpf", document="11144477735"
        )

        migrate(AFTER)
        email, document, birth_date = raw_values(ana.id)
        assert all(str(value).startswith("v1.") for value in (email, document, birth_date))
        assert raw_values(bruno.id)[2] is None

        migrate(latest)
        converted = Customer.objects.get(pk=ana.id)
        assert (converted.email, converted.document, converted.birth_date) == (
            "ana@example.com",
            "52998224725",
            date(1990, 4, 1),
        )
        found = customer_find_by_document(digits="11144477735")
        assert found is not None
        assert found.pk == bruno.id

        migrate(BEFORE)
        email, document, birth_date = raw_values(ana.id)
        assert (email, document, str(birth_date)) == ("ana@example.com", "52998224725", "1990-04-01")
    finally:
        migrate(latest)
