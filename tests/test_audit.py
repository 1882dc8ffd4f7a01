"""The audit trail end to end: what the API and the back office leave in it, that the database
keeps it append-only, that `manage.py verify_audit` catches every kind of tampering, and that
many concurrent writers still leave one unbroken chain."""

from __future__ import annotations

import io
import threading
import time
import uuid

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from apps.accounts.models import BankAccount
from apps.audit import middleware
from apps.audit import public as audit
from apps.audit.models import AuditRecord
from apps.audit.selectors import audit_verify
from apps.audit.services import audit_append
from apps.audit.tests import tampering
from fintech.auth.principal import Principal
from tests.factories import new_cpf, open_account

pytestmark = pytest.mark.django_db

LOCALHOST = "127.0.0.1"  # the test client's REMOTE_ADDR


def customer_body() -> dict[str, str]:
    return {"name": "Ana Souza", "email": "ana@example.com", "document": new_cpf(), "birth_date": "1990-04-01"}


def only_record(**filters) -> AuditRecord:
    records = list(AuditRecord.objects.filter(**filters))
    assert len(records) == 1, [(r.action, r.outcome, r.actor) for r in AuditRecord.objects.all()]
    return records[0]


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def verify_fails(*args: str) -> str:
    out = io.StringIO()
    with pytest.raises(CommandError, match="the audit chain is broken"):
        call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


# --- the API ---------------------------------------------------------------------------------------


class TestApiRequests:
    def test_a_state_change_records_who_what_when_and_from_where(self, staff):
        response = staff.post(
            "/api/v1/customers",
            customer_body(),
            format="json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
            HTTP_USER_AGENT="bank-app/1.0",
        )
        assert response.status_code == 201, response.content
        record = only_record()
        assert (record.actor, record.actor_type, record.client_id) == ("staff-tester", "staff", "fintech-dev")
        assert (record.action, record.outcome, record.reason) == ("POST /api/v1/customers", 201, "")
        assert (record.resource_type, record.resource_id) == ("customers", response.json()["id"])
        assert (record.source_ip, record.user_agent) == (LOCALHOST, "bank-app/1.0")
        assert record.correlation_id == response["X-Correlation-ID"]
        assert record.trace_id == response["traceparent"].split("-")[1]
        assert record.occurred_at is not None
        assert (record.before, record.after) == (None, None)

    def test_a_refused_state_change_is_recorded_with_its_outcome(self, staff):
        response = staff.post("/api/v1/customers", {"name": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
        assert response.status_code == 400
        record = only_record()
        assert (record.action, record.outcome, record.reason) == ("POST /api/v1/customers", 400, "validation_error")

    def test_a_customer_token_names_the_customer(self, client_with):
        account = open_account()
        client = client_with("accounts:write", customer_id=account.customer_id)
        assert client.post(f"/api/v1/accounts/{account.id}/close").status_code in {200, 409}
        record = only_record()
        assert (record.actor, record.actor_type) == (f"customer-{account.customer_id}", "customer")
        assert record.customer_id == account.customer_id
        assert (record.resource_type, record.resource_id) == ("account-close", str(account.id))

    def test_reads_are_not_recorded(self, staff):
        assert staff.get("/api/v1/customers").status_code == 200
        assert not AuditRecord.objects.exists()

    def test_a_request_without_a_token_is_an_authentication_failure(self, anonymous):
        response = anonymous.get("/api/v1/customers", HTTP_USER_AGENT="scanner/" + "x" * 500)
        assert response.status_code == 401
        record = only_record()
        assert (record.actor, record.actor_type) == ("anonymous", "anonymous")
        assert (record.action, record.outcome, record.reason) == ("auth.failed", 401, "not_authenticated")
        assert record.details == {"request": "GET /api/v1/customers"}
        assert record.source_ip == LOCALHOST
        assert len(record.user_agent) == 256

    def test_a_bad_token_is_an_authentication_failure_of_nobody(self, anonymous):
        anonymous.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
        response = anonymous.post("/api/v1/transfers", {}, format="json")
        assert response.status_code == 401
        record = only_record()
        assert (record.actor, record.action, record.outcome, record.reason) == (
            "anonymous",
            "auth.failed",
            401,
            "invalid_token",
        )
        assert record.details == {"request": "POST /api/v1/transfers"}

    def test_a_missing_scope_is_an_authorization_failure_of_the_caller(self, client_with):
        client = client_with("customers:read")
        response = client.post("/api/v1/customers", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
        assert response.status_code == 403
        record = only_record()
        assert (record.actor, record.actor_type) == ("staff-tester", "staff")
        assert (record.action, record.outcome, record.reason) == ("authz.denied", 403, "insufficient_scope")
        assert record.details == {"request": "POST /api/v1/customers"}
        assert record.source_ip == LOCALHOST
        assert not AuditRecord.objects.exclude(action="authz.denied").exists()  # the refusal wrote nothing else

    def test_a_read_refused_to_a_customer_is_recorded(self, client_with):
        client = client_with("ledger:read", customer_id=uuid.uuid4())
        response = client.get(f"/api/v1/ledger/transactions/{uuid.uuid4()}")
        assert response.status_code == 403
        record = only_record()
        assert (record.actor_type, record.action, record.outcome) == ("customer", "authz.denied", 403)

    def test_the_forwarded_address_counts_only_behind_a_trusted_proxy(self, anonymous, settings):
        anonymous.get("/api/v1/customers", HTTP_X_FORWARDED_FOR="198.51.100.7")
        settings.FINTECH_TRUSTED_PROXIES = 1
        anonymous.get("/api/v1/customers", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
        assert list(AuditRecord.objects.order_by("seq").values_list("source_ip", flat=True)) == [
            LOCALHOST,
            "198.51.100.7",
        ]

    def test_a_failed_audit_write_is_counted_and_the_answer_stands(self, staff, monkeypatch):
        def broken(**facts):
            raise RuntimeError("database away")

        monkeypatch.setattr(middleware, "audit_append", broken)
        before = middleware.AUDIT_WRITE_FAILURES._value.get()
        response = staff.post("/api/v1/customers", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-3")
        assert response.status_code == 201
        assert middleware.AUDIT_WRITE_FAILURES._value.get() == before + 1


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        ({"sub": "u-1", "customer_id": str(uuid.UUID(int=1)), "azp": "mobile"}, "customer"),
        ({"sub": "clerk-7", "azp": "back-office"}, "staff"),
        ({"sub": "payments-gateway", "client_id": "payments-gateway"}, "service"),
        ({"sub": "f1e2", "azp": "payments", "preferred_username": "service-account-payments"}, "service"),
    ],
)
def test_the_kind_of_caller_comes_from_the_token(claims, kind):
    assert audit.principal_type(Principal.from_claims(claims)) == kind


# --- the back office ------------------------------------------------------------------------------


@pytest.fixture
def root(client):
    user = User.objects.create_superuser("root", "root@example.com", "correct horse battery staple")
    client.force_login(user)
    return client


class TestBackOffice:
    def test_an_edit_records_the_fields_before_and_after(self, root):
        group = Group.objects.create(name="tellers")
        permission = Permission.objects.get(codename="view_bankaccount")
        start = AuditRecord.objects.count()
        response = root.post(
            f"/admin/auth/group/{group.pk}/change/",
            {"name": "senior tellers", "permissions": [permission.pk]},
            REMOTE_ADDR="192.0.2.10",
        )
        assert response.status_code == 302, response.content[:500]
        record = only_record(action="admin.change")
        assert AuditRecord.objects.count() == start + 1
        assert (record.actor, record.actor_type) == ("root", "admin")
        assert (record.resource_type, record.resource_id) == ("auth.group", str(group.pk))
        assert record.before == {"name": "tellers", "permissions": []}
        assert record.after == {"name": "senior tellers", "permissions": [str(permission.pk)]}
        assert record.details is not None
        assert record.details["object"] == "senior tellers"
        assert record.source_ip == "192.0.2.10"
        assert record.outcome is None  # recorded in the admin's transaction, before its answer

    def test_an_addition_records_the_new_object(self, root):
        assert root.post("/admin/auth/group/add/", {"name": "auditors"}).status_code == 302
        record = only_record(action="admin.add")
        assert record.before is None
        assert record.after is not None
        assert record.after["name"] == "auditors"

    def test_secrets_are_never_copied_into_the_trail(self, root):
        clerk = User.objects.create_user("clerk", password="old password 1234")
        new = "a brand new password 5678"
        response = root.post(
            f"/admin/auth/user/{clerk.pk}/password/", {"password1": new, "password2": new, "usable_password": "true"}
        )
        assert response.status_code == 302, response.content[:2000]
        record = only_record(action="admin.change", resource_type="auth.user")
        assert record.before == {"password": "[redacted]"}
        assert record.after == {"password": "[redacted]"}
        assert "pbkdf2" not in str(record.details)

    def test_an_action_records_what_it_was_applied_to(self, root):
        account = open_account()
        response = root.post(
            "/admin/accounts/bankaccount/",
            {"action": "block_selected", "_selected_action": [str(account.id)], "index": "0"},
        )
        assert response.status_code == 302
        assert BankAccount.objects.get(pk=account.pk).status == BankAccount.Status.BLOCKED
        record = only_record(action="admin.action")
        assert (record.actor, record.actor_type, record.outcome) == ("root", "admin", 302)
        assert (record.resource_type, record.resource_id) == ("accounts.bankaccount", str(account.id))
        assert record.details == {"name": "block_selected", "selected": [str(account.id)], "select_across": False}

    def test_a_failed_login_and_a_login_are_recorded(self, client):
        User.objects.create_superuser("root", "root@example.com", "correct horse battery staple")
        client.post("/admin/login/", {"username": "root", "password": "guess"}, REMOTE_ADDR="203.0.113.5")
        failed = only_record(action="auth.failed")
        assert (failed.actor, failed.actor_type, failed.reason) == ("anonymous", "anonymous", "invalid_credentials")
        assert failed.details == {"username": "root"}
        assert failed.source_ip == "203.0.113.5"
        assert "guess" not in str(failed.details)
        client.post("/admin/login/", {"username": "root", "password": "correct horse battery staple"})
        assert (only_record(action="auth.login").actor, only_record(action="auth.login").source_ip) == (
            "root",
            LOCALHOST,
        )

    def test_the_trail_is_read_only_in_the_admin(self, root):
        audit_append(action="POST /api/v1/transfers", actor="staff-tester", actor_type="staff", outcome=201)
        record = AuditRecord.objects.order_by("-seq").first()
        assert record is not None
        assert root.get("/admin/audit/auditrecord/").status_code == 200
        assert root.get(f"/admin/audit/auditrecord/{record.seq}/change/").status_code == 200
        assert root.get("/admin/audit/auditrecord/add/").status_code == 403
        assert root.get(f"/admin/audit/auditrecord/{record.seq}/delete/").status_code == 403
        count = AuditRecord.objects.count()
        root.post(f"/admin/audit/auditrecord/{record.seq}/change/", {"actor": "mallory"})
        assert AuditRecord.objects.get(seq=record.seq).actor == "staff-tester"
        assert AuditRecord.objects.count() == count + 1  # the refused POST is itself recorded (403)


# --- the database and verify_audit ---------------------------------------------------------------


@pytest.fixture
def chain(staff, anonymous):
    for _ in range(3):
        staff.post("/api/v1/customers", customer_body(), format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        anonymous.get("/api/v1/accounts")
    assert AuditRecord.objects.count() == 6
    return list(AuditRecord.objects.order_by("seq"))


class TestVerifyAudit:
    def test_an_intact_chain_passes_with_its_count_and_head(self, chain):
        out = verify()
        assert "checked 6 audit records" in out
        assert f"head 6:{chain[-1].hash}" in out
        assert "the audit chain is intact" in out
        assert "intact" in verify("--chunk-size", "1", "--anchor", f"6:{chain[-1].hash}")

    def test_a_changed_record_fails_it(self, chain):
        tampering.change(2, outcome=200)
        assert "seq 2: its fields do not match its hash: the record was changed" in verify_fails()

    def test_a_changed_and_rehashed_record_fails_it(self, chain):
        tampering.change(2, rehash=True, actor="someone-else")
        assert "seq 3: follows a record that is not in the table" in verify_fails()

    def test_a_deleted_record_fails_it(self, chain):
        tampering.delete(4)
        out = verify_fails("--chunk-size", "2")
        assert "seq 4 missing: 1 record(s) deleted" in out
        assert "seq 5: follows a record that is not in the table" in out

    def test_a_deleted_head_fails_it_against_the_recorded_head(self, chain):
        tampering.delete(6)
        assert "records at its end were deleted" in verify_fails("--anchor", f"6:{chain[-1].hash}")

    def test_reordered_records_fail_it(self, chain):
        tampering.swap_sequence_numbers(2, 3)
        assert "records were reordered" in verify_fails()

    def test_records_whose_contents_were_swapped_fail_it(self, chain):
        tampering.swap_contents(4, 5)
        out = verify_fails()
        assert "seq 4: follows seq 5 (which comes after it), not seq 3: records were reordered" in out

    def test_a_malformed_anchor_is_refused(self, chain):
        with pytest.raises(CommandError):
            call_command("verify_audit", "--anchor", "six:abc")


class TestAppendOnly:
    def test_the_application_cannot_update_a_record(self, chain):
        with pytest.raises(tampering.DATABASE_REFUSALS, match="append-only"), transaction.atomic():
            AuditRecord.objects.filter(seq=1).update(actor="mallory")
        record = AuditRecord.objects.get(seq=2)
        record.outcome = 200
        with pytest.raises(tampering.DATABASE_REFUSALS, match="append-only"), transaction.atomic():
            record.save()
        assert "intact" in verify()

    @pytest.mark.postgres
    def test_the_application_cannot_delete_a_record_on_postgresql(self, chain):
        with pytest.raises(tampering.DATABASE_REFUSALS, match="append-only: DELETE"), transaction.atomic():
            AuditRecord.objects.filter(seq=3).delete()
        with pytest.raises(tampering.DATABASE_REFUSALS, match="append-only: DELETE"), transaction.atomic():
            AuditRecord.objects.all().delete()
        assert AuditRecord.objects.count() == 6
        assert "intact" in verify()


# --- concurrency ---------------------------------------------------------------------------------

THREADS = 16
APPENDS_PER_THREAD = 500
BURST_TIMEOUT = 120.0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_leave_one_unbroken_chain():
    """16 threads, each with its own connection, append 500 records each, every one in its own
    transaction, all released together: 8000 records, seq 1..8000, one chain."""
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def write(thread: int) -> None:
        try:
            connections["default"].ensure_connection()  # connected before the start line
            barrier.wait(timeout=BURST_TIMEOUT)
            for n in range(APPENDS_PER_THREAD):
                audit_append(
                    action="POST /api/v1/transfers",
                    actor=f"writer-{thread}",
                    actor_type="service",
                    resource_id=str(n),
                    outcome=201,
                )
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(i,), daemon=True) for i in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, BURST_TIMEOUT - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), f"writers still running after {BURST_TIMEOUT}s"
    assert not errors, errors[:3]

    total = THREADS * APPENDS_PER_THREAD
    assert AuditRecord.objects.count() == total
    assert list(AuditRecord.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, total + 1))
    for writer in range(THREADS):
        assert AuditRecord.objects.filter(actor=f"writer-{writer}").count() == APPENDS_PER_THREAD
    report = audit_verify()
    assert report.ok, report.problems[:10]
    assert (report.records_checked, report.head_seq) == (total, total)
    assert f"checked {total} audit records" in verify()
    print(f"{total} concurrent appends by {THREADS} writers in {elapsed:.1f}s ({total / elapsed:.0f}/s)")
    assert connection.vendor == "postgresql"
