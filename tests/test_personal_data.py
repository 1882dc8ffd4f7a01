"""Personal data at rest: a database dump holds no plaintext, keys rotate without losing a row
or a lookup, nothing logs plaintext, and erasure leaves the books intact."""

from __future__ import annotations

import glob
import io
import json
import logging
import os
import re
import subprocess
import uuid
from datetime import date

import pytest
from django.core.management import call_command
from django.db import connection
from django.forms.models import model_to_dict

from apps.accounts import services as accounts
from apps.accounts.errors import CustomerNotVerified
from apps.accounts.models import BankAccount
from apps.customers.models import Customer
from apps.customers.selectors import customer_find_by_document
from apps.ledger.models import JournalEntry, LedgerAccount
from fintech.crypto import keyring
from fintech.crypto.cipher import UnknownKeyId, token_kid
from fintech.crypto.keyring import generate_key
from fintech.observability.logging import JsonFormatter
from outbox.models import OutboxEvent
from tests.factories import open_account, verified_customer

# Known people: each document is given formatted, and the dump must hold it in neither form.
PEOPLE = [
    {
        "name": "Ana Souza",
        "email": "ana.souza@example.com",
        "document": "529.982.247-25",
        "phone": "+55 11 98765-4321",
        "birth_date": "1987-03-14",
    },
    {
        "name": "Bruno Lima",
        "email": "bruno.lima@example.org",
        "document": "111.444.777-35",
        "phone": "+5521912345678",
        "birth_date": "1979-11-23",
    },
    {
        "name": "Padaria Pão Quente",
        "email": "contato@paoquente.example",
        "document": "11.222.333/0001-81",
        "phone": "+55 (31) 3333-4444",
    },
    {"name": "Carla Dias", "email": "carla.dias@example.net", "document": "11444777000161"},
]


def plaintexts(person: dict[str, str]) -> list[str]:
    values = [person["document"], re.sub(r"\D", "", person["document"]), person["email"]]
    if "phone" in person:
        values += [person["phone"], "+" + re.sub(r"\D", "", person["phone"])]
    if "birth_date" in person:
        values.append(person["birth_date"])
    return values


def onboard(client, person):
    response = client.post("/api/v1/customers", person, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert response.status_code == 201, response.content
    return response.json()


def stored_tokens() -> list[str]:
    """Every encrypted value as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT email, phone, document, birth_date FROM customers_customer")
        return [value for row in cursor.fetchall() for value in row if value is not None]


def pg_dump_binary() -> str:
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_dump")
    assert candidates, "pg_dump is not installed under /usr/lib/postgresql/*/bin"
    return max(candidates, key=lambda path: int(path.split("/")[4]))


def dump_database() -> str:
    db = connection.settings_dict
    result = subprocess.run(
        [
            pg_dump_binary(),
            "--no-owner",
            "--host",
            str(db["HOST"] or "127.0.0.1"),
            "--port",
            str(db["PORT"] or 5432),
            "--username",
            str(db["USER"]),
            str(db["NAME"]),
        ],
        env={**os.environ, "PGPASSWORD": str(db["PASSWORD"] or "")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_database_dump_holds_no_plaintext_personal_data(staff):
    created = [onboard(staff, person) for person in PEOPLE]
    staff.post(f"/api/v1/customers/{created[0]['id']}/verify")
    assert staff.post("/api/v1/customers", PEOPLE[1], format="json").status_code == 409  # found by blind index

    dump = dump_database()

    assert all(customer["id"] in dump for customer in created)  # the rows are in the dump
    assert dump.count("\tv1.") >= 4  # as tokens
    leaked = [value for person in PEOPLE for value in plaintexts(person) if value in dump]
    assert leaked == []
    # The masked API still answers from the encrypted rows.
    listed = staff.get("/api/v1/customers").json()["results"]
    assert {c["document"] for c in listed} >= {"***.982.247-**", "**.222.333/****-**"}
    detail = staff.get(f"/api/v1/customers/{created[0]['id']}").json()
    assert detail["email"] == "ana.souza@example.com"
    assert detail["birth_date"] == "1987-03-14"
    assert detail["phone"] == "+55*******4321"


@pytest.mark.django_db
def test_keys_rotate_without_losing_a_row_or_a_lookup(staff, settings):
    settings.FINTECH_BLIND_INDEX_KEY = generate_key()
    k1, k2 = f"k1:{generate_key()}", f"k2:{generate_key()}"

    def use_keys(*entries):
        settings.FINTECH_ENCRYPTION_KEYS = list(entries)
        keyring.reset_caches()

    use_keys(k1)
    created = [onboard(staff, person) for person in PEOPLE]
    assert {token_kid(token) for token in stored_tokens()} == {"k1"}

    # Dropping k1 before rotating would lose every row: the failure names the missing kid.
    use_keys(k2)
    with pytest.raises(UnknownKeyId, match="'k1'"):
        list(Customer.objects.all())

    # A new key first: new writes use it, old rows still read.
    use_keys(k2, k1)
    newcomer = onboard(staff, {"name": "Davi", "email": "davi@example.com", "document": "390.533.447-05"})
    assert Customer.objects.get(pk=newcomer["id"]).email == "davi@example.com"
    kids = [token_kid(token) for token in stored_tokens()]
    assert kids.count("k2") == 2
    assert set(kids) == {"k1", "k2"}

    out = io.StringIO()
    call_command("rotate_keys", "--chunk-size", "2", stdout=out)
    report = out.getvalue()
    assert "customers.Customer: 13 value(s) re-encrypted under k2" in report  # 4+4+3+2 values under k1
    assert "customers.Customer: 4/5 rows" in report  # in chunks
    assert {token_kid(token) for token in stored_tokens()} == {"k2"}

    again = io.StringIO()
    call_command("rotate_keys", stdout=again)
    assert "Done: 0 value(s) re-encrypted." in again.getvalue()  # idempotent

    use_keys(k2)
    for person, customer in zip(PEOPLE, created, strict=True):
        row = Customer.objects.get(pk=customer["id"])
        assert row.email == person["email"]
        assert row.document == re.sub(r"\D", "", person["document"])
        assert row.birth_date == (date.fromisoformat(person["birth_date"]) if "birth_date" in person else None)
        detail = staff.get(f"/api/v1/customers/{customer['id']}")
        assert detail.status_code == 200
        assert detail.json()["email"] == person["email"]
        duplicate = staff.post("/api/v1/customers", {**person, "email": "x@example.com"}, format="json")
        assert duplicate.status_code == 409
        assert duplicate.json()["code"] == "duplicate_document"
    found = customer_find_by_document(digits="52998224725")
    assert found is not None
    assert found.id == uuid.UUID(created[0]["id"])


@pytest.mark.django_db
def test_nothing_logs_or_answers_with_plaintext_personal_data(staff, caplog):
    person = PEOPLE[0]
    caplog.set_level(logging.DEBUG)
    responses = [
        staff.post("/api/v1/customers", person, format="json", HTTP_IDEMPOTENCY_KEY="onboard-ana"),
        staff.post("/api/v1/customers", person, format="json", HTTP_IDEMPOTENCY_KEY="onboard-ana"),  # replay
        staff.post("/api/v1/customers", person, format="json"),  # duplicate: 409
        staff.post("/api/v1/customers", {**person, "document": "529.982.247-24"}, format="json"),  # 400
        staff.post("/api/v1/customers", {**person, "phone": "+55 11 98"}, format="json"),  # 400
        staff.get("/api/v1/customers"),
    ]
    assert [r.status_code for r in responses] == [201, 201, 409, 400, 400, 200]
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    answered = "\n".join(r.content.decode() for r in responses)
    events = json.dumps([e.envelope for e in OutboxEvent.objects.all()])
    secrets = [*plaintexts(person), "52998224724", "529.982.247-24"]
    for text in (logged, answered, events):
        assert [value for value in secrets if value in text] == []
    assert str(Customer.objects.get()) == "Ana Souza (***.982.247-**)"


@pytest.mark.django_db(transaction=True)  # the transfer's choreography runs after its commit
def test_erasure_keeps_accounts_ledger_and_balances_intact(staff):
    customer = verified_customer("Erin Erased")
    funded = open_account(customer=customer, balance=12_345)
    other = open_account(balance=1_000)
    for amount in (345, 12_000):  # the customer moves everything out and closes the account first
        moved = staff.post(
            "/api/v1/transfers",
            {"from_account_id": str(funded.id), "to_account_id": str(other.id), "amount": amount, "currency": "BRL"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert moved.status_code == 201, moved.content
    accounts.account_close(account_id=funded.id, reason="leaving the bank", changed_by="ops")

    def books():
        return (
            [model_to_dict(a) for a in BankAccount.objects.order_by("id")],
            [model_to_dict(a) for a in LedgerAccount.objects.order_by("id")],
            [model_to_dict(e) for e in JournalEntry.objects.order_by("id")],
            staff.get(f"/api/v1/accounts/{funded.id}").json(),
            staff.get(f"/api/v1/accounts/{funded.id}/statement").json(),
        )

    before = books()
    response = staff.post(f"/api/v1/customers/{customer.id}/erase")
    assert response.status_code == 200
    assert response.json()["name"] == "erased"
    assert books() == before
    assert (before[3]["balance"], before[3]["status"]) == (0, "closed")
    assert BankAccount.objects.get(pk=funded.id).customer_id == customer.id  # the ledger still names its owner

    out = io.StringIO()
    call_command("reconcile", "--quiet", stdout=out)
    assert "the books reconcile" in out.getvalue()
    assert staff.post(f"/api/v1/customers/{customer.id}/erase").status_code == 200  # again: nothing changes
    assert OutboxEvent.objects.filter(event_type="customer.erased").count() == 1
    with pytest.raises(CustomerNotVerified):
        accounts.account_open(customer_id=customer.id)  # no new business with an erased customer
