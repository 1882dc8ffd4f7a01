from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group

from apps.audit import public as audit
from apps.fraud import selectors, services
from apps.fraud.errors import (
    DenyListDuplicate,
    InvalidRuleParameters,
    NotInReview,
    ReviewAlreadyDecided,
    UnknownRule,
)
from apps.fraud.models import Alert, FiredRule, FraudRule, FraudRuleVersion, MonitoredAccount, RuleBook, Screening
from apps.fraud.rules import CATALOGUE
from apps.fraud.tests.conftest import NOON_UTC
from fintech.errors import ValidationFailed
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

OLD = NOON_UTC - timedelta(days=400)


def screen(*operations):
    return services.operations_screen(operations=list(operations), now=NOON_UTC)


def decision(operation) -> str:
    return Screening.objects.get(subject_id=operation.subject_id).decision


def fired(operation) -> list[str]:
    return sorted(FiredRule.objects.filter(screening__subject_id=operation.subject_id).values_list("rule", flat=True))


def opened(*account_ids, at=OLD):
    services.accounts_opened(opened=dict.fromkeys(account_ids, at))


def events(event_type: str):
    return [row.envelope for row in OutboxEvent.objects.filter(event_type=event_type).order_by("id")]


def change(name, **changes):
    return services.rule_change(name=name, changed_by="fraud-admin-1", changer_kind="staff", **changes)


# -- a fresh database ------------------------------------------------------------------------


def test_a_fresh_database_has_the_default_rules_enabled_at_version_1():
    rules = {rule.name: rule for rule in FraudRule.objects.all()}
    assert set(rules) == set(CATALOGUE)
    for name, rule_class in CATALOGUE.items():
        assert rules[name].enabled
        assert rules[name].version == 1
        assert rules[name].parameters == rule_class.default_parameters()
    assert rules["amount"].parameters["threshold"] == 5_000_000
    assert rules["new_account"].parameters == {"max_age_days": 7, "threshold": 1_000_000, "score": 40}
    assert rules["new_beneficiary"].parameters["threshold"] == 500_000
    assert rules["velocity"].parameters == {
        "max_count": 60,
        "count_window_minutes": 10,
        "max_amount": 10_000_000,
        "amount_window_minutes": 60,
        "score": 60,
    }
    assert rules["night_time"].parameters["time_zone"] == "America/Sao_Paulo"
    assert (rules["night_time"].parameters["starts"], rules["night_time"].parameters["ends"]) == ("20:00", "06:00")
    assert rules["round_trip"].parameters == {"window_minutes": 10, "threshold": 100_000, "score": 50}
    assert FraudRuleVersion.objects.filter(version=1).count() == len(CATALOGUE)
    assert RuleBook.objects.filter(pk=1).exists()


def test_a_fresh_database_has_the_fraud_groups_with_their_permissions():
    admin = set(Group.objects.get(name="fraud-admin").permissions.values_list("codename", flat=True))
    analyst = set(Group.objects.get(name="fraud-analyst").permissions.values_list("codename", flat=True))
    assert {"change_fraudrule", "add_denylistentry", "decide_review"} <= admin
    assert "decide_review" in analyst
    assert "change_fraudrule" not in analyst


# -- screening -------------------------------------------------------------------------------


def test_an_approved_screening_is_recorded_and_published_without_an_alert(transfer):
    operation = transfer(amount=100)
    (screening,) = screen(operation)
    assert screening.decision == "approve"
    assert screening.rule_versions == dict.fromkeys(CATALOGUE, 1)
    assert screening.inputs["amount"] == 100
    (event,) = events("fraud.screened")
    assert event["subject"] == str(operation.subject_id)
    assert event["data"]["decision"] == "approve"
    assert event["data"]["rules"] == []
    assert not Alert.objects.exists()
    assert not events("fraud.alert")


def test_a_review_raises_an_alert_with_the_rules_that_fired(transfer):
    source = uuid.uuid4()
    opened(source)
    operation = transfer(amount=5_000_001, source=source)
    screen(operation)
    assert decision(operation) == "review"
    assert fired(operation) == ["amount", "new_beneficiary"]
    alert = Alert.objects.get(subject_id=operation.subject_id)
    assert alert.status == "review"
    assert alert.decided_at is None
    (event,) = events("fraud.alert")
    assert event["subject"] == str(operation.subject_id)
    assert event["data"]["alert_id"] == str(alert.id)
    assert event["data"]["decision"] == "review"
    assert event["data"]["score"] == 80
    assert {r["rule"]: r["version"] for r in event["data"]["rules"]} == {"amount": 1, "new_beneficiary": 1}


def test_a_reject_is_final_and_raises_an_alert(transfer):
    destination = uuid.uuid4()
    services.deny_list_add(kind="account", value=str(destination), reason="mule", added_by="ops", adder_kind="staff")
    operation = transfer(destination=destination)
    screen(operation)
    assert decision(operation) == "reject"
    alert = Alert.objects.get(subject_id=operation.subject_id)
    assert (alert.status, alert.decided_by) == ("rejected", services.RULES_ACTOR)
    assert events("fraud.alert")[0]["data"]["decision"] == "reject"


def test_a_redelivered_operation_changes_nothing(transfer):
    operation = transfer(amount=100)
    screen(operation)
    assert screen(operation) == []
    assert screen(operation, operation) == []
    assert Screening.objects.count() == 1
    assert len(events("fraud.screened")) == 1


def test_velocity_counts_the_recorded_screenings_of_the_account_within_the_window(transfer):
    change("velocity", parameters={"max_count": 3})
    source = uuid.uuid4()
    old = transfer(source=source, at=NOON_UTC - timedelta(minutes=10))  # on the window's edge: outside
    screen(old)
    first, second, third, fourth = (transfer(source=source, at=NOON_UTC + timedelta(seconds=i)) for i in range(4))
    for operation in (first, second, third):
        screen(operation)
        assert decision(operation) == "approve"
    screen(fourth)
    assert decision(fourth) == "review"
    assert fired(fourth) == ["velocity"]
    assert Screening.objects.get(subject_id=fourth.subject_id).inputs["recent_count"] == 3


def test_velocity_counts_the_operations_of_one_batch_once_each(transfer):
    change("velocity", parameters={"max_count": 3})
    source = uuid.uuid4()
    batch = [transfer(source=source) for _ in range(5)]
    screen(*batch, *batch)  # each twice in the batch: counted once
    assert [decision(operation) for operation in batch] == ["approve"] * 3 + ["review"] * 2
    assert Screening.objects.count() == 5


def test_velocity_counts_the_amount_out_of_the_account_in_an_hour_per_currency(transfer):
    change("velocity", parameters={"max_amount": 1_000})
    source = uuid.uuid4()
    opened(source)
    screen(transfer(source=source, amount=600, at=NOON_UTC - timedelta(minutes=59)))
    screen(transfer(source=source, amount=900, currency="USD"))
    at_limit = transfer(source=source, amount=400)
    screen(at_limit)
    assert decision(at_limit) == "approve"  # 1,000 out: not more than it
    over = transfer(source=source, amount=1)
    screen(over)
    assert fired(over) == ["velocity"]


def test_a_destination_is_known_once_money_went_there_approved(transfer):
    source, destination = uuid.uuid4(), uuid.uuid4()
    opened(source)
    first_big = transfer(source=source, destination=destination, amount=500_001)
    screen(first_big)
    assert fired(first_big) == ["new_beneficiary"]  # in review: not known yet
    small = transfer(source=source, destination=destination, amount=100)
    screen(small)
    big_again = transfer(source=source, destination=destination, amount=500_001)
    screen(big_again)
    assert decision(big_again) == "approve"  # the small one was approved


def test_an_analysts_approval_makes_the_destination_known(transfer):
    source, destination = uuid.uuid4(), uuid.uuid4()
    opened(source)
    first = transfer(source=source, destination=destination, amount=500_001)
    screen(first)
    services.review_approve(subject_id=first.subject_id, decided_by="analyst", decider_kind="staff")
    again = transfer(source=source, destination=destination, amount=500_001)
    screen(again)
    assert decision(again) == "approve"


def test_a_round_trip_within_10_minutes_is_held_for_review(transfer):
    a, b = uuid.uuid4(), uuid.uuid4()
    opened(a, b)
    screen(transfer(source=a, destination=b, amount=200, at=NOON_UTC - timedelta(minutes=9)))
    back = transfer(source=b, destination=a, amount=100_001)
    screen(back)
    assert fired(back) == ["round_trip"]
    long_after = transfer(source=b, destination=a, amount=100_001, at=NOON_UTC + timedelta(minutes=20))
    screen(long_after)
    assert "round_trip" not in fired(long_after)


def test_a_round_trip_inside_one_batch_is_seen(transfer):
    a, b = uuid.uuid4(), uuid.uuid4()
    opened(a, b)
    there, back = transfer(source=a, destination=b, amount=200), transfer(source=b, destination=a, amount=100_001)
    screen(there, back)
    assert fired(back) == ["round_trip"]


@pytest.mark.parametrize("kind", ["account", "customer"])
def test_a_destination_on_the_deny_list_is_rejected(transfer, kind):
    destination, customer = uuid.uuid4(), uuid.uuid4()
    value = {"account": destination, "customer": customer}[kind]
    services.deny_list_add(kind=kind, value=str(value).upper(), reason="fraud ring", added_by="ops", adder_kind="staff")
    operation = transfer(destination=destination, destination_customer=customer)
    screen(operation)
    assert fired(operation) == ["deny_list"]
    assert Screening.objects.get(subject_id=operation.subject_id).inputs["deny_listed"] == kind


def test_a_payment_to_a_deny_listed_beneficiary_is_rejected():
    from apps.fraud.rules import Operation

    services.deny_list_add(kind="beneficiary", value="pix:abc", reason="mule", added_by="ops", adder_kind="staff")
    payment = Operation(
        subject_type="payment",
        subject_id=uuid.uuid4(),
        account_id=uuid.uuid4(),
        customer_id=uuid.uuid4(),
        amount=100,
        currency="BRL",
        occurred_at=NOON_UTC,
        initiated_by_customer=True,
        beneficiary_ref="pix:abc",
    )
    (screening,) = screen(payment)
    assert (screening.decision, screening.counterparty) == ("reject", "beneficiary:pix:abc")
    assert events("fraud.screened")[0]["data"]["subject_type"] == "payment"


def test_the_account_age_comes_from_the_accounts_it_saw_open(transfer):
    young, old, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    opened(young, at=NOON_UTC - timedelta(days=6))
    opened(old, at=NOON_UTC - timedelta(days=7))
    for source, expected in ((young, ["new_account"]), (old, []), (unknown, ["new_account"])):
        operation = transfer(source=source, amount=1_000_001)
        screen(operation)
        assert [rule for rule in fired(operation) if rule != "new_beneficiary"] == expected, source
    assert not MonitoredAccount.objects.filter(pk=unknown, opened_at__isnull=False).exists()


# -- the rules as data ------------------------------------------------------------------------


def test_changing_a_rule_makes_a_version_the_next_screening_is_judged_by(transfer):
    before = selectors.rule_book_revision()
    rule = change("amount", parameters={"threshold": 1_000})
    assert rule.version == 2
    assert rule.parameters == {"threshold": 1_000, "score": 50}
    assert selectors.rule_book_revision() != before
    assert FraudRuleVersion.objects.get(rule="amount", version=2).changed_by == "fraud-admin-1"
    operation = transfer(amount=1_001)
    screen(operation)
    assert fired(operation) == ["amount"]
    assert Screening.objects.get(subject_id=operation.subject_id).rule_versions["amount"] == 2
    (record,) = audit.records(action_prefix="fraud.rule.changed")
    assert (record.actor, record.resource_id) == ("fraud-admin-1", "amount")
    assert record.before is not None
    assert record.after is not None
    assert (record.before["version"], record.after["version"]) == (1, 2)


def test_switching_a_rule_off_stops_it_firing(transfer):
    change("amount", enabled=False)
    operation = transfer(amount=6_000_000, source=uuid.uuid4())
    screen(operation)
    assert "amount" not in fired(operation)
    assert "amount" not in Screening.objects.get(subject_id=operation.subject_id).rule_versions


def test_a_change_that_changes_nothing_makes_no_version():
    change("amount", parameters={"threshold": 5_000_000})
    assert FraudRule.objects.get(pk="amount").version == 1
    assert not audit.records(action_prefix="fraud.rule.changed")


def test_parameters_the_rule_cannot_run_with_change_nothing():
    with pytest.raises(InvalidRuleParameters) as refusal:
        change("night_time", parameters={"time_zone": "Nowhere/Else"})
    assert "time_zone" in refusal.value.errors
    assert FraudRule.objects.get(pk="night_time").version == 1
    with pytest.raises(UnknownRule):
        change("astrology", enabled=False)


def test_a_rule_missing_from_the_table_runs_with_its_defaults_and_can_be_changed(transfer):
    FraudRule.objects.filter(pk="amount").delete()
    operation = transfer(amount=5_000_001, source=uuid.uuid4())
    screen(operation)
    assert "amount" in fired(operation)
    assert change("amount", parameters={"threshold": 7}).version == 2


# -- reviews -----------------------------------------------------------------------------------


@pytest.fixture
def in_review(transfer):
    operation = transfer(amount=5_000_001, source=uuid.uuid4())
    screen(operation)
    assert decision(operation) == "review"
    return operation


def test_an_analysts_approval_is_recorded_published_and_audited(in_review):
    alert = services.review_approve(
        subject_id=in_review.subject_id, decided_by="ana", decider_kind="staff", reason=" looks fine "
    )
    assert (alert.status, alert.decided_by, alert.decision_reason) == ("approved", "ana", "looks fine")
    (event,) = events("fraud.review_decided")
    assert event["subject"] == str(in_review.subject_id)
    assert event["data"] == {
        "subject_type": "transfer",
        "subject_id": str(in_review.subject_id),
        "decision": "approved",
        "decided_by": "ana",
        "reason": "looks fine",
        "decided_at": event["data"]["decided_at"],
    }
    (record,) = audit.records(action_prefix="fraud.review.approved")
    assert (record.actor, record.actor_type, record.resource_id) == ("ana", "staff", str(in_review.subject_id))
    assert record.details is not None
    assert record.details["rule_versions"]["amount"] == 1


def test_a_review_is_decided_once(in_review):
    services.review_reject(subject_id=in_review.subject_id, decided_by="ana", decider_kind="staff")
    for command in (services.review_approve, services.review_reject):
        with pytest.raises(ReviewAlreadyDecided):
            command(subject_id=in_review.subject_id, decided_by="bruno", decider_kind="staff")
    assert Alert.objects.get(subject_id=in_review.subject_id).status == "rejected"
    assert len(events("fraud.review_decided")) == 1


def test_only_an_operation_held_for_review_can_be_decided(transfer):
    approved = transfer(amount=100)
    rejected = transfer(amount=100, destination=uuid.uuid4())
    services.deny_list_add(
        kind="account", value=str(rejected.counterparty_account_id), reason="r", added_by="o", adder_kind="staff"
    )
    screen(approved, rejected)
    for subject_id in (approved.subject_id, rejected.subject_id, uuid.uuid4()):
        with pytest.raises(NotInReview) as refusal:
            services.review_approve(subject_id=subject_id, decided_by="ana", decider_kind="staff")
        assert refusal.value.code == "transfer_not_in_review"
        assert refusal.value.status == 409


def test_a_reason_longer_than_500_characters_is_refused(in_review):
    with pytest.raises(ValidationFailed):
        services.review_reject(
            subject_id=in_review.subject_id, decided_by="ana", decider_kind="staff", reason="x" * 501
        )
    assert Alert.objects.get(subject_id=in_review.subject_id).status == "review"


def test_reviews_not_decided_within_the_timeout_expire(transfer, settings):
    settings.FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS = 24
    old, recent = transfer(amount=5_000_001), transfer(amount=5_000_001)
    services.operations_screen(operations=[old], now=NOON_UTC - timedelta(hours=24))
    services.operations_screen(operations=[recent], now=NOON_UTC - timedelta(hours=23, minutes=59))
    assert services.reviews_expire(now=NOON_UTC) == 1
    assert Alert.objects.get(subject_id=old.subject_id).status == "expired"
    assert Alert.objects.get(subject_id=recent.subject_id).status == "review"
    (event,) = events("fraud.review_decided")
    assert (event["data"]["decision"], event["data"]["decided_by"]) == ("expired", services.REVIEW_TIMEOUT_ACTOR)
    assert [r.actor_type for r in audit.records(action_prefix="fraud.review.expired")] == ["system"]
    assert services.reviews_expire(now=NOON_UTC) == 0


# -- the deny list ---------------------------------------------------------------------------------


def test_the_deny_list_keeps_one_entry_per_destination():
    account = uuid.uuid4()
    entry = services.deny_list_add(kind="account", value=str(account), reason="r", added_by="ops", adder_kind="staff")
    assert entry.value == str(account)
    with pytest.raises(DenyListDuplicate):
        services.deny_list_add(kind="account", value=account.hex, reason="again", added_by="ops", adder_kind="staff")
    with pytest.raises(ValidationFailed):
        services.deny_list_add(kind="account", value="not-an-id", reason="r", added_by="ops", adder_kind="staff")
    services.deny_list_remove(entry_id=entry.pk, removed_by="ops", remover_kind="staff")
    assert len(audit.records(action_prefix="fraud.deny_list.")) == 2
