import threading
import uuid

import pytest
from django.db import connections

from apps.customers.models import Customer
from fintech.api.models import IdempotencyRecord
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

ANA = {"name": "Ana Souza", "email": "ana@example.com", "document": "529.982.247-25", "birth_date": "1990-04-01"}


def post_customer(client, body=None, key=None):
    return client.post("/api/v1/customers", body or ANA, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


def nothing_written():
    return not Customer.objects.exists() and not OutboxEvent.objects.exists()


class TestCreate:
    def test_creates_a_pending_customer_with_a_masked_document(self, staff):
        response = post_customer(staff)
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "pending"
        assert body["document"] == "***.982.247-**"
        assert body["email"] == "a***@e***.com"  # answers to commands are stored for replays: masked
        assert body["phone"] is None
        assert "birth_date" not in body
        assert body["erased_at"] is None
        assert body["document_type"] == "cpf"
        assert body["name"] == "Ana Souza"
        assert uuid.UUID(body["id"])
        assert body["created_at"].endswith("Z")
        assert OutboxEvent.objects.filter(event_type="customer.created", aggregate_id=body["id"]).count() == 1

    def test_same_key_and_body_replays_the_first_response(self, staff):
        first = post_customer(staff, key="onboard-ana")
        second = post_customer(staff, key="onboard-ana")
        assert second.status_code == first.status_code == 201
        assert second.json() == first.json()
        assert second["Idempotent-Replayed"] == "true"
        assert Customer.objects.count() == 1

    def test_same_key_with_another_body_is_refused(self, staff):
        post_customer(staff, key="onboard-ana")
        other = {**ANA, "document": "111.444.777-35"}
        assert_problem(post_customer(staff, other, key="onboard-ana"), 422, "idempotency_key_reuse")
        assert Customer.objects.count() == 1

    def test_the_idempotency_key_is_optional_for_onboarding(self, staff):
        response = staff.post("/api/v1/customers", ANA, format="json")
        assert response.status_code == 201
        assert_problem(staff.post("/api/v1/customers", ANA, format="json"), 409, "duplicate_document")

    def test_an_overlong_idempotency_key_is_refused(self, staff):
        assert_problem(post_customer(staff, key="k" * 256), 400, "idempotency_key_invalid")
        assert nothing_written()

    def test_bad_check_digit_is_refused_and_writes_nothing(self, staff):
        body = assert_problem(post_customer(staff, {**ANA, "document": "529.982.247-24"}), 400, "invalid_document")
        assert "document" in body["errors"]
        assert nothing_written()
        assert not IdempotencyRecord.objects.exists()

    def test_the_key_is_free_again_after_a_refused_request(self, staff):
        post_customer(staff, {**ANA, "document": "529.982.247-24"}, key="k1")
        assert post_customer(staff, key="k1").status_code == 201

    def test_duplicate_document_is_a_conflict(self, staff):
        post_customer(staff)
        assert_problem(post_customer(staff, {**ANA, "document": "52998224725"}), 409, "duplicate_document")

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"email": "not-an-email"}, "email"),
            ({"name": ""}, "name"),
            ({"birth_date": "2999-01-01"}, "birth_date"),
            ({"birth_date": "yesterday"}, "birth_date"),
            ({"status": "verified"}, "status"),
            ({"id": "00000000-0000-0000-0000-000000000001"}, "id"),
        ],
    )
    def test_bad_fields_are_validation_errors(self, staff, change, field):
        body = assert_problem(post_customer(staff, {**ANA, **change}), 400, "validation_error")
        assert field in body["errors"]
        assert nothing_written()

    def test_malformed_json_is_a_problem(self, staff):
        response = staff.generic(
            "POST", "/api/v1/customers", '{"name": ', content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
        )
        assert_problem(response, 400, "malformed_request")
        assert nothing_written()

    def test_json_that_is_not_an_object_is_a_problem(self, staff):
        response = staff.generic(
            "POST", "/api/v1/customers", "[1, 2]", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
        )
        assert_problem(response, 400, "malformed_request")

    def test_form_bodies_are_unsupported(self, staff):
        response = staff.post("/api/v1/customers", ANA, HTTP_IDEMPOTENCY_KEY="k")  # multipart
        assert_problem(response, 415, "unsupported_media_type")

    def test_a_customer_token_cannot_onboard_customers(self, client_with):
        client = client_with("customers:write", customer_id=uuid.uuid4())
        assert_problem(post_customer(client), 403, "staff_only")
        assert nothing_written()

    def test_without_the_scope_it_is_forbidden(self, client_with):
        assert_problem(post_customer(client_with("customers:read")), 403, "insufficient_scope")

    def test_without_a_token_it_is_unauthenticated(self, anonymous):
        response = post_customer(anonymous)
        assert_problem(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"].startswith("Bearer")

    def test_a_forged_token_is_unauthenticated(self, anonymous):
        anonymous.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
        assert_problem(post_customer(anonymous), 401, "invalid_token")


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_have_exactly_one_effect(client_with):
    clients = [client_with("customers:write", subject="onboarding-app") for _ in range(8)]
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def send(client):
        barrier.wait()
        try:
            statuses.append(post_customer(client, key="one-key").status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Customer.objects.count() == 1
    assert OutboxEvent.objects.filter(event_type="customer.created").count() == 1
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}


class TestReadAndDecide:
    @pytest.fixture
    def ana(self, staff):
        return post_customer(staff).json()

    def test_staff_reads_a_customer_with_the_email_and_birth_date_whole(self, staff, ana):
        response = staff.get(f"/api/v1/customers/{ana['id']}")
        assert response.status_code == 200
        assert response.json() == {**ana, "email": "ana@example.com", "birth_date": "1990-04-01"}
        assert response.json()["document"] == "***.982.247-**"

    def test_a_customer_reads_itself_but_not_others(self, client_with, ana):
        own = client_with("customers:read", customer_id=uuid.UUID(ana["id"]))
        response = own.get(f"/api/v1/customers/{ana['id']}")
        assert response.status_code == 200
        assert response.json()["email"] == "ana@example.com"
        other = client_with("customers:read", customer_id=uuid.uuid4())
        assert_problem(other.get(f"/api/v1/customers/{ana['id']}"), 404, "not_found")

    def test_unknown_customer_is_not_found(self, staff):
        assert_problem(staff.get(f"/api/v1/customers/{uuid.uuid4()}"), 404, "customer_not_found")

    def test_unknown_path_is_a_problem(self, staff):
        assert_problem(staff.get("/api/v1/customers/not-a-uuid"), 404, "not_found")

    def test_delete_is_not_allowed(self, staff, ana):
        assert_problem(staff.delete(f"/api/v1/customers/{ana['id']}"), 405, "method_not_allowed")

    def test_verify_publishes_customer_verified(self, staff, ana):
        response = staff.post(f"/api/v1/customers/{ana['id']}/verify")
        assert response.status_code == 200
        assert response.json()["status"] == "verified"
        event = OutboxEvent.objects.get(event_type="customer.verified")
        assert event.envelope["data"]["reviewed_by"] == "staff-tester"

    def test_a_decided_customer_cannot_be_decided_again(self, staff, ana):
        staff.post(f"/api/v1/customers/{ana['id']}/verify")
        assert_problem(staff.post(f"/api/v1/customers/{ana['id']}/reject"), 409, "kyc_already_decided")

    def test_reject_with_a_reason(self, staff, ana):
        response = staff.post(f"/api/v1/customers/{ana['id']}/reject", {"reason": "forged ID"}, format="json")
        assert response.json()["status"] == "rejected"
        assert Customer.objects.get(pk=ana["id"]).kyc_reason == "forged ID"

    def test_a_customer_cannot_verify_itself_even_with_the_scope(self, client_with, ana):
        client = client_with("kyc:review", customer_id=uuid.UUID(ana["id"]))
        assert_problem(client.post(f"/api/v1/customers/{ana['id']}/verify"), 403, "staff_only")
        assert Customer.objects.get(pk=ana["id"]).status == "pending"

    def test_verifying_needs_the_kyc_scope(self, client_with, ana):
        client = client_with("customers:read customers:write")
        assert_problem(client.post(f"/api/v1/customers/{ana['id']}/verify"), 403, "insufficient_scope")

    def test_list_is_cursor_paginated_and_filtered(self, staff, ana):
        bruno = post_customer(staff, {**ANA, "document": "111.444.777-35"}).json()
        page = staff.get("/api/v1/customers?page_size=1").json()
        assert set(page) == {"results", "next"}
        assert len(page["results"]) == 1
        assert page["next"]
        rest = staff.get(page["next"]).json()
        assert len(rest["results"]) == 1
        assert rest["next"] is None
        assert [page["results"][0]["id"], rest["results"][0]["id"]] == [bruno["id"], ana["id"]]  # newest first
        verified = staff.get("/api/v1/customers?status=verified").json()
        assert verified["results"] == []
        for listed in (page["results"][0], rest["results"][0]):
            assert listed["email"] == "a***@e***.com"
            assert "birth_date" not in listed

    def test_a_customer_lists_only_itself(self, client_with, staff, ana):
        post_customer(staff, {**ANA, "document": "111.444.777-35"})
        own = client_with("customers:read", customer_id=uuid.UUID(ana["id"]))
        assert [c["id"] for c in own.get("/api/v1/customers").json()["results"]] == [ana["id"]]


class TestPhone:
    def test_an_e164_phone_is_kept_and_shown_masked(self, staff):
        response = post_customer(staff, {**ANA, "phone": "+55 (11) 98765-4321"})
        assert response.status_code == 201
        assert response.json()["phone"] == "+55*******4321"
        assert staff.get(f"/api/v1/customers/{response.json()['id']}").json()["phone"] == "+55*******4321"
        assert Customer.objects.get().phone == "+5511987654321"

    @pytest.mark.parametrize("phone", [None, ""])
    def test_the_phone_is_optional(self, staff, phone):
        response = post_customer(staff, {**ANA, "phone": phone})
        assert response.status_code == 201
        assert response.json()["phone"] is None

    @pytest.mark.parametrize("phone", ["11987654321", "+0 11 98765-4321", "+55 11 98", "+55119876543210000", "+55abc"])
    def test_a_phone_that_is_not_e164_is_refused_without_echoing_it(self, staff, phone):
        response = post_customer(staff, {**ANA, "phone": phone})
        body = assert_problem(response, 400, "invalid_phone")
        assert "phone" in body["errors"]
        assert phone not in response.content.decode()
        assert nothing_written()


def test_an_invalid_document_is_not_echoed_in_the_problem(staff):
    response = post_customer(staff, {**ANA, "document": "529.982.247-24"})
    assert_problem(response, 400, "invalid_document")
    assert "529.982.247-24" not in response.content.decode()
    assert "52998224724" not in response.content.decode()


class TestErase:
    @pytest.fixture
    def ana(self, staff):
        return post_customer(staff, {**ANA, "phone": "+5511987654321"}).json()

    def test_staff_erases_the_personal_data(self, staff, ana):
        response = staff.post(f"/api/v1/customers/{ana['id']}/erase")
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == ana["id"]
        assert body["name"] == "erased"
        assert body["email"] is body["phone"] is body["document"] is None
        assert body["erased_at"]
        assert body["status"] == "pending"
        detail = staff.get(f"/api/v1/customers/{ana['id']}").json()
        assert detail["email"] is detail["birth_date"] is None
        event = OutboxEvent.objects.get(event_type="customer.erased")
        assert event.envelope["data"] == {
            "customer_id": ana["id"],
            "erased_by": "staff-tester",
            "erased_at": body["erased_at"],
        }

    def test_erasing_again_is_a_no_op(self, staff, ana):
        first = staff.post(f"/api/v1/customers/{ana['id']}/erase").json()
        again = staff.post(f"/api/v1/customers/{ana['id']}/erase")
        assert again.status_code == 200
        assert again.json() == first
        assert OutboxEvent.objects.filter(event_type="customer.erased").count() == 1

    def test_an_erased_customer_cannot_be_verified(self, staff, ana):
        staff.post(f"/api/v1/customers/{ana['id']}/erase")
        assert_problem(staff.post(f"/api/v1/customers/{ana['id']}/verify"), 409, "customer_erased")

    def test_the_document_of_an_erased_customer_can_be_onboarded_again(self, staff, ana):
        staff.post(f"/api/v1/customers/{ana['id']}/erase")
        again = post_customer(staff)
        assert again.status_code == 201
        assert again.json()["id"] != ana["id"]

    def test_a_customer_cannot_erase_itself_even_with_the_scope(self, client_with, ana):
        client = client_with("customers:erase", customer_id=uuid.UUID(ana["id"]))
        assert_problem(client.post(f"/api/v1/customers/{ana['id']}/erase"), 403, "staff_only")
        assert Customer.objects.get(pk=ana["id"]).erased_at is None

    def test_erasing_needs_its_own_scope_not_the_write_scope(self, client_with, ana):
        client = client_with("customers:read customers:write kyc:review")
        assert_problem(client.post(f"/api/v1/customers/{ana['id']}/erase"), 403, "insufficient_scope")

    def test_erasing_an_unknown_customer_is_not_found(self, staff):
        assert_problem(staff.post(f"/api/v1/customers/{uuid.uuid4()}/erase"), 404, "customer_not_found")
