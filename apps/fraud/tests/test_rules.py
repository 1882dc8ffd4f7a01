"""Each rule fires at its threshold and not just below it; the decision; the parameters' checks."""

from __future__ import annotations

import dataclasses
import importlib
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from apps.fraud.rules import (
    APPROVE,
    CATALOGUE,
    REJECT,
    REVIEW,
    AmountRule,
    DenyListRule,
    Facts,
    InvalidParameters,
    NewAccountRule,
    NewBeneficiaryRule,
    NightTimeRule,
    RoundTripRule,
    Rule,
    RuleConfiguration,
    RuleSet,
    VelocityRule,
)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
NOON = datetime(2026, 11, 30, 12, 0, tzinfo=SAO_PAULO)


def facts(**changes) -> Facts:
    """An unremarkable operation: small, by staff, at noon, from an old account to a known destination."""
    quiet = Facts(
        amount=100,
        currency="BRL",
        occurred_at=NOON,
        initiated_by_customer=False,
        account_opened_at=NOON - timedelta(days=365),
        recent_count=0,
        recent_amount=0,
        known_counterparty=True,
        returning_money=False,
        deny_listed=None,
    )
    return dataclasses.replace(quiet, **changes)


def fires(rule, **changes) -> bool:
    return rule.evaluate(facts(**changes)) is not None


def reason(rule: Rule, **changes) -> str:
    result = rule.evaluate(facts(**changes))
    assert result is not None, "the rule did not fire"
    return result.reason


def test_amount_fires_above_50_000_00_and_not_at_it():
    rule = AmountRule()
    assert fires(rule, amount=5_000_001)
    assert not fires(rule, amount=5_000_000)
    assert reason(rule, amount=6_000_000) == "60000.00 BRL is above 50000.00 BRL"


def test_new_account_fires_for_an_account_under_7_days_sending_above_10_000_00():
    rule = NewAccountRule()
    young = NOON - timedelta(days=7) + timedelta(seconds=1)
    old_enough = NOON - timedelta(days=7)
    assert fires(rule, amount=1_000_001, account_opened_at=young)
    assert not fires(rule, amount=1_000_000, account_opened_at=young)
    assert not fires(rule, amount=1_000_001, account_opened_at=old_enough)


def test_new_account_treats_an_account_of_unknown_age_as_young():
    result = NewAccountRule().evaluate(facts(amount=1_000_001, account_opened_at=None))
    assert result is not None
    assert "unknown age" in result.reason


def test_new_beneficiary_fires_on_a_first_transfer_above_5_000_00():
    rule = NewBeneficiaryRule()
    assert fires(rule, amount=500_001, known_counterparty=False)
    assert not fires(rule, amount=500_000, known_counterparty=False)
    assert not fires(rule, amount=500_001, known_counterparty=True)


def test_velocity_fires_on_the_61st_operation_in_10_minutes_and_not_the_60th():
    rule = VelocityRule()
    assert fires(rule, recent_count=60)  # this one is the 61st
    assert not fires(rule, recent_count=59)
    assert "61 operations" in reason(rule, recent_count=60)


def test_velocity_fires_above_100_000_00_out_in_an_hour():
    rule = VelocityRule()
    assert fires(rule, amount=100, recent_amount=10_000_000 - 100 + 1)
    assert not fires(rule, amount=100, recent_amount=10_000_000 - 100)


@pytest.mark.parametrize(
    ("local", "night"),
    [
        ((19, 59, 59), False),
        ((20, 0, 0), True),
        ((23, 59, 59), True),
        ((0, 0, 0), True),
        ((5, 59, 59), True),
        ((6, 0, 0), False),
        ((12, 0, 0), False),
    ],
)
def test_night_time_is_from_20_00_to_06_00_in_sao_paulo(local, night):
    moment = datetime.combine(date(2026, 11, 30), time(*local), tzinfo=SAO_PAULO).astimezone(UTC)
    assert fires(NightTimeRule(), amount=100_001, initiated_by_customer=True, occurred_at=moment) is night


def test_night_time_fires_above_1_000_00_and_only_for_a_customers_own_token():
    rule = NightTimeRule()
    night = datetime(2026, 11, 30, 23, 0, tzinfo=SAO_PAULO)
    assert fires(rule, amount=100_001, initiated_by_customer=True, occurred_at=night)
    assert not fires(rule, amount=100_000, initiated_by_customer=True, occurred_at=night)
    assert not fires(rule, amount=100_001, initiated_by_customer=False, occurred_at=night)  # staff are exempt


def test_night_time_within_a_day_when_the_window_does_not_cross_midnight():
    rule = NightTimeRule(starts="01:00", ends="05:00")
    assert fires(
        rule, amount=100_001, initiated_by_customer=True, occurred_at=datetime(2026, 1, 1, 1, tzinfo=SAO_PAULO)
    )
    assert not fires(
        rule, amount=100_001, initiated_by_customer=True, occurred_at=datetime(2026, 1, 1, 23, tzinfo=SAO_PAULO)
    )


def test_deny_list_rejects_a_listed_destination():
    rule = DenyListRule()
    assert rule.action == REJECT
    assert reason(rule, deny_listed="customer") == "the destination customer is on the deny list"
    assert not fires(rule)


def test_round_trip_fires_when_money_goes_back_above_1_000_00():
    rule = RoundTripRule()
    assert fires(rule, amount=100_001, returning_money=True)
    assert not fires(rule, amount=100_000, returning_money=True)
    assert not fires(rule, amount=100_001, returning_money=False)


def defaults(**rows: dict[str, Any]) -> RuleSet:
    configurations = [
        RuleConfiguration(name=name, enabled=row.get("enabled", True), parameters=row.get("parameters", {}), version=2)
        for name, row in rows.items()
    ]
    return RuleSet.of(configurations, revision="r")


def test_an_operation_no_rule_fires_on_is_approved_with_score_zero():
    verdict = defaults().judge(facts())
    assert (verdict.decision, verdict.score, verdict.fired) == (APPROVE, 0, ())


def test_review_rules_add_their_scores_and_a_reject_wins_over_them():
    rules = defaults()
    review = rules.judge(facts(amount=6_000_000, known_counterparty=False))
    assert review.decision == REVIEW
    assert [(f.rule, f.score) for f in review.fired] == [("amount", 50), ("new_beneficiary", 30)]
    assert review.score == 80
    rejected = rules.judge(facts(amount=6_000_000, deny_listed="account"))
    assert rejected.decision == REJECT
    assert [f.rule for f in rejected.fired] == ["deny_list", "amount"]


def test_a_disabled_rule_does_not_fire_and_is_not_among_the_versions_in_force():
    rules = defaults(amount={"enabled": False})
    assert rules.judge(facts(amount=6_000_000)).decision == APPROVE
    assert "amount" not in rules.versions()
    assert rules.versions()["velocity"] == 1  # no row: its defaults, version 1


def test_the_rule_table_sets_parameters_and_versions():
    rules = defaults(amount={"parameters": {"threshold": 100}})
    verdict = rules.judge(facts(amount=101))
    assert [(f.rule, f.version) for f in verdict.fired] == [("amount", 2)]


def test_windows_come_from_the_velocity_and_round_trip_rules():
    rules = defaults(
        velocity={"parameters": {"count_window_minutes": 5, "amount_window_minutes": 30}},
        round_trip={"parameters": {"window_minutes": 15}},
    )
    windows = rules.windows()
    assert (windows.count, windows.amount, windows.round_trip) == (
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(minutes=15),
    )


@pytest.mark.parametrize(
    ("rule", "parameters", "field"),
    [
        ("amount", {"threshold": "5000"}, "threshold"),
        ("amount", {"threshold": True}, "threshold"),
        ("amount", {"threshold": -1}, "threshold"),
        ("amount", {"limit": 5}, "limit"),
        ("velocity", {"max_count": 0}, "max_count"),
        ("night_time", {"starts": "8pm"}, "starts"),
        ("night_time", {"time_zone": "Mars/Olympus"}, "time_zone"),
        ("night_time", {"threshold": 1.5}, "threshold"),
    ],
)
def test_parameters_a_rule_cannot_run_with_are_refused(rule, parameters, field):
    with pytest.raises(InvalidParameters) as refusal:
        CATALOGUE[rule].configured(parameters, version=2)
    assert field in refusal.value.errors


def test_missing_parameters_take_their_defaults():
    rule = CATALOGUE["velocity"].configured({"max_count": 5}, version=3)
    assert rule.parameters() == {**VelocityRule.default_parameters(), "max_count": 5}
    assert rule.version == 3


def test_the_migration_seeds_exactly_the_catalogues_defaults():
    seeded = importlib.import_module("apps.fraud.migrations.0002_default_rules_groups_and_known_accounts").DEFAULT_RULES
    assert seeded == {name: rule.default_parameters() for name, rule in CATALOGUE.items()}
