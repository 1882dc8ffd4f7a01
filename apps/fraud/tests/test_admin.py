from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group, User

from apps.audit import public as audit
from apps.fraud import services
from apps.fraud.models import Alert, DenyListEntry, FraudRule

pytestmark = pytest.mark.django_db

QUEUE = "/admin/fraud/alert/"


def back_office_user(client, *groups: str):
    user = User.objects.create_user(username=f"staff-{uuid.uuid4().hex[:6]}", password="x", is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    client.force_login(user)
    return user


@pytest.fixture
def held(transfer):
    operation = transfer(amount=5_000_001, source=uuid.uuid4())
    services.operations_screen(operations=[operation])
    return Alert.objects.get(subject_id=operation.subject_id)


def test_the_review_queue_shows_what_fired_and_what_the_rules_saw(client, held):
    back_office_user(client, "fraud-analyst")
    listing = client.get(QUEUE, {"status__exact": "review"}).content.decode()
    assert str(held.subject_id) in listing
    assert "amount (50)" in listing
    page = client.get(f"{QUEUE}{held.pk}/change/").content.decode()
    assert "50000.01 BRL is above 50000.00 BRL" in page
    assert "recent_count" in page  # the inputs
    assert "velocity v1" in page  # the rules in force


def test_an_analyst_approves_from_the_queue_after_giving_a_reason(client, held):
    user = back_office_user(client, "fraud-analyst")
    chosen = {"action": "approve_selected", "_selected_action": [str(held.pk)]}
    confirmation = client.post(QUEUE, chosen)
    assert confirmation.status_code == 200
    assert "Reason" in confirmation.content.decode()
    assert Alert.objects.get(pk=held.pk).status == "review"  # nothing decided before the confirmation

    response = client.post(QUEUE, {**chosen, "confirmed": "yes", "reason": "known customer"})
    assert response.status_code == 302
    alert = Alert.objects.get(pk=held.pk)
    assert (alert.status, alert.decided_by, alert.decision_reason) == (
        "approved",
        f"admin:{user.username}",
        "known customer",
    )
    (record,) = audit.records(action_prefix="fraud.review.approved")
    assert record.actor_type == "admin"


def test_back_office_staff_without_the_decide_permission_cannot_decide(client, held):
    user = back_office_user(client)
    user.user_permissions.add(*_permissions("view_alert"))
    response = client.post(
        QUEUE, {"action": "reject_selected", "_selected_action": [str(held.pk)], "confirmed": "yes", "reason": "x"}
    )
    assert response.status_code == 200  # the admin answers "no action selected" on the list
    assert Alert.objects.get(pk=held.pk).status == "review"


def test_a_fraud_admin_tunes_a_rule_and_the_change_is_versioned_and_audited(client):
    user = back_office_user(client, "fraud-admin")
    response = client.post(
        "/admin/fraud/fraudrule/amount/change/", {"enabled": "on", "parameters": '{"threshold": 7000000}'}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = FraudRule.objects.get(pk="amount")
    assert (rule.version, rule.parameters, rule.updated_by) == (
        2,
        {"threshold": 7_000_000, "score": 50},
        f"admin:{user.username}",
    )
    assert audit.records(action_prefix="fraud.rule.changed", resource_id="amount")
    assert audit.records(action_prefix="admin.change", resource_type="fraud.fraudrule")


def test_a_rule_cannot_be_given_parameters_it_cannot_run_with(client):
    back_office_user(client, "fraud-admin")
    response = client.post(
        "/admin/fraud/fraudrule/velocity/change/", {"enabled": "on", "parameters": '{"max_count": "many"}'}
    )
    assert response.status_code == 200
    assert "max_count: must be a whole number" in response.content.decode()
    assert FraudRule.objects.get(pk="velocity").version == 1


def test_an_analyst_sees_the_rules_but_cannot_change_them(client):
    back_office_user(client, "fraud-analyst")
    assert client.get("/admin/fraud/fraudrule/").status_code == 200
    response = client.post("/admin/fraud/fraudrule/amount/change/", {"enabled": "", "parameters": "{}"})
    assert response.status_code == 403
    assert FraudRule.objects.get(pk="amount").enabled


def test_a_fraud_admin_adds_a_destination_to_the_deny_list(client):
    back_office_user(client, "fraud-admin")
    account = uuid.uuid4()
    response = client.post(
        "/admin/fraud/denylistentry/add/", {"kind": "account", "value": account.hex, "reason": "mule"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = DenyListEntry.objects.get()
    assert entry.value == str(account)
    again = client.post("/admin/fraud/denylistentry/add/", {"kind": "account", "value": str(account), "reason": "x"})
    assert again.status_code == 200  # the form says it is there already
    assert DenyListEntry.objects.count() == 1
    assert len(audit.records(action_prefix="fraud.deny_list.added")) == 1


def _permissions(*codenames: str):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(content_type__app_label="fraud", codename__in=codenames)
