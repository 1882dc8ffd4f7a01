from __future__ import annotations

import uuid

import pytest

from apps.notifications.tests.test_services import recorded

pytestmark = pytest.mark.django_db

URL = "/api/v1/notifications"


def test_staff_lists_a_customers_notifications_with_channel_status_and_attempts(client_with):
    customer = uuid.uuid4()
    mine = recorded(customer_id=customer, status="sent", attempts=3)
    recorded(customer_id=uuid.uuid4())

    response = client_with("customers:read").get(URL, {"customer_id": str(customer)})

    assert response.status_code == 200
    [item] = response.json()["results"]
    assert item["id"] == str(mine.id)
    assert (item["channel"], item["status"], item["attempts"]) == ("push", "sent", 3)
    assert item["subject"] == "Transferência de R$ 12,34 enviada"
    assert response.json()["next"] is None


def test_a_customer_reads_its_own_and_never_anothers(client_with):
    customer, stranger = uuid.uuid4(), uuid.uuid4()
    recorded(customer_id=customer)
    token = client_with("customers:read", customer_id=customer)

    assert len(token.get(URL).json()["results"]) == 1
    assert len(token.get(URL, {"customer_id": str(customer)}).json()["results"]) == 1
    response = token.get(URL, {"customer_id": str(stranger)})
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")


def test_staff_must_name_the_customer_and_bad_ids_are_problems(client_with):
    staff = client_with("customers:read")
    missing = staff.get(URL)
    assert missing.status_code == 400
    assert "customer_id" in missing.json()["errors"]
    bad = staff.get(URL, {"customer_id": "not-a-uuid"})
    assert (bad.status_code, bad.json()["code"]) == (400, "validation_error")


def test_the_list_needs_customers_read(client_with, anonymous):
    assert anonymous.get(URL).status_code == 401
    assert client_with("accounts:read").get(URL, {"customer_id": str(uuid.uuid4())}).status_code == 403
