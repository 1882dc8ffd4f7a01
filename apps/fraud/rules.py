"""The anti-fraud rules: small classes, each with its own parameters, each turning the facts of
one operation (a transfer or an outbound payment) into a score and a reason, or nothing.

A rule's parameters and whether it is on are data (`models.FraudRule`, edited in the admin), so
tuning a threshold or switching a rule off needs no deploy; the classes here say what each
parameter means, its default (what a fresh database has) and its bounds. Amounts are minor units
of the operation's currency: the thresholds read as BRL and apply to every currency by the same
numbers. The decision is `reject` when a reject rule fires, else `review` when any rule fires,
else `approve`. Nothing here touches the database: `selectors` gathers the facts, `services`
records what the rules said.

Over 400 lines because the engine (facts, rule, rule set, verdict) and the catalogue of rules it
runs read best together: a new rule is one small class here and its default in a migration.
"""

from __future__ import annotations

import dataclasses
import typing
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fintech.events import rfc3339
from fintech.money import Money

APPROVE = "approve"
REVIEW = "review"
REJECT = "reject"


class InvalidParameters(ValueError):
    """Parameters a rule cannot run with; `errors` says which and why."""

    def __init__(self, rule: str, errors: dict[str, str]) -> None:
        self.rule = rule
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


@dataclass(frozen=True, slots=True)
class Operation:
    """A transfer or an outbound payment on its way to the rules."""

    subject_type: str  # "transfer" or "payment"
    subject_id: uuid.UUID
    account_id: uuid.UUID  # the account the money leaves
    customer_id: uuid.UUID
    amount: int
    currency: str
    occurred_at: datetime  # when it was initiated
    initiated_by_customer: bool
    counterparty_account_id: uuid.UUID | None = None  # a transfer's destination account
    counterparty_customer_id: uuid.UUID | None = None  # and its customer
    beneficiary_ref: str | None = None  # a payment's beneficiary, pseudonymous

    @property
    def counterparty(self) -> str:
        """Where the money goes, as one key: a destination of the same kind is the same beneficiary."""
        if self.counterparty_account_id is not None:
            return f"account:{self.counterparty_account_id}"
        return f"beneficiary:{self.beneficiary_ref}"


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules see about one operation, as the fraud context's own records had it when the
    operation was screened (the counts exclude the operation itself)."""

    amount: int
    currency: str
    occurred_at: datetime  # when the operation was initiated
    initiated_by_customer: bool  # asked for with a customer's own token (not staff, not a service)
    account_opened_at: datetime | None  # None: the fraud context has not seen the account open
    recent_count: int  # other operations from the account initiated within the velocity count window
    recent_amount: int  # their amount in this currency, within the velocity amount window
    known_counterparty: bool  # an earlier operation from the account to this counterparty was approved
    returning_money: bool  # the counterparty sent money to the account within the round-trip window
    deny_listed: str | None  # which deny-list entry the counterparty matches: account, customer, beneficiary

    def as_inputs(self) -> dict[str, Any]:
        """The facts as stored with the screening and shown to the analyst (plain JSON)."""
        inputs = dataclasses.asdict(self)
        inputs["occurred_at"] = rfc3339(self.occurred_at)
        inputs["account_opened_at"] = rfc3339(self.account_opened_at) if self.account_opened_at else None
        return inputs

    def money(self, amount: int) -> str:
        return str(Money(amount, self.currency))


@dataclass(frozen=True, slots=True)
class RuleResult:
    score: int
    reason: str


@dataclass(frozen=True, slots=True)
class FiredRule:
    rule: str
    version: int
    score: int
    reason: str

    def as_event(self) -> dict[str, Any]:
        return {"rule": self.rule, "version": self.version, "score": self.score, "reason": self.reason}


def _minimum(value: int) -> dict[str, int]:
    return {"minimum": value}


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A rule and the parameters it runs with. `version` is the rule table's version of them."""

    name: ClassVar[str]
    title: ClassVar[str]
    action: ClassVar[str] = REVIEW

    version: int = 1
    score: int = field(default=10, metadata=_minimum(0))

    def evaluate(self, facts: Facts) -> RuleResult | None:
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "version"}

    @classmethod
    def default_parameters(cls) -> dict[str, Any]:
        return cls().parameters()

    @classmethod
    def configured(cls, parameters: Mapping[str, Any], *, version: int) -> Rule:
        """The rule with `parameters` (missing ones take their defaults); InvalidParameters when
        one is unknown, of the wrong type or out of bounds."""
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls) if f.name != "version"}
        errors = {name: "not a parameter of this rule" for name in parameters if name not in known}
        values: dict[str, Any] = {}
        for name, value in parameters.items():
            spec = known.get(name)
            if spec is None:
                continue
            expected = hints[name]
            if expected is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    errors[name] = "must be a whole number"
                    continue
                minimum = spec.metadata.get("minimum")
                if minimum is not None and value < minimum:
                    errors[name] = f"must be at least {minimum}"
                    continue
            elif expected is str and not isinstance(value, str):
                errors[name] = "must be text"
                continue
            values[name] = value
        if errors:
            raise InvalidParameters(cls.name, errors)
        rule = cls(version=version, **values)
        problems = rule.problems()
        if problems:
            raise InvalidParameters(cls.name, problems)
        return rule

    def problems(self) -> dict[str, str]:
        """Checks beyond types and bounds (a rule with text parameters overrides this)."""
        return {}

    def fired(self, result: RuleResult) -> FiredRule:
        return FiredRule(rule=self.name, version=self.version, score=result.score, reason=result.reason)


@dataclass(frozen=True, kw_only=True)
class DenyListRule(Rule):
    name: ClassVar[str] = "deny_list"
    title: ClassVar[str] = "The destination account, customer or beneficiary is on the deny list"
    action: ClassVar[str] = REJECT

    score: int = field(default=100, metadata=_minimum(0))

    def evaluate(self, facts: Facts) -> RuleResult | None:
        if facts.deny_listed is None:
            return None
        return RuleResult(self.score, f"the destination {facts.deny_listed} is on the deny list")


@dataclass(frozen=True, kw_only=True)
class AmountRule(Rule):
    name: ClassVar[str] = "amount"
    title: ClassVar[str] = "A large amount"

    threshold: int = field(default=5_000_000, metadata=_minimum(0))  # 50,000.00
    score: int = field(default=50, metadata=_minimum(0))

    def evaluate(self, facts: Facts) -> RuleResult | None:
        if facts.amount <= self.threshold:
            return None
        return RuleResult(self.score, f"{facts.money(facts.amount)} is above {facts.money(self.threshold)}")


@dataclass(frozen=True, kw_only=True)
class NewAccountRule(Rule):
    name: ClassVar[str] = "new_account"
    title: ClassVar[str] = "A young account sending a large amount"

    max_age_days: int = field(default=7, metadata=_minimum(1))
    threshold: int = field(default=1_000_000, metadata=_minimum(0))  # 10,000.00
    score: int = field(default=40, metadata=_minimum(0))

    def evaluate(self, facts: Facts) -> RuleResult | None:
        if facts.amount <= self.threshold:
            return None
        if facts.account_opened_at is None:
            # Not seen opening (older than the fraud context, or its account.created still on
            # its way): an account the bank cannot vouch for is treated as a young one.
            return RuleResult(self.score, f"an account of unknown age sends {facts.money(facts.amount)}")
        age = facts.occurred_at - facts.account_opened_at
        if age >= timedelta(days=self.max_age_days):
            return None
        return RuleResult(
            self.score,
            f"an account opened {age.days} day(s) ago (under {self.max_age_days}) sends "
            f"{facts.money(facts.amount)}, above {facts.money(self.threshold)}",
        )


@dataclass(frozen=True, kw_only=True)
class NewBeneficiaryRule(Rule):
    name: ClassVar[str] = "new_beneficiary"
    title: ClassVar[str] = "A large first transfer to a destination"

    threshold: int = field(default=500_000, metadata=_minimum(0))  # 5,000.00
    score: int = field(default=30, metadata=_minimum(0))

    def evaluate(self, facts: Facts) -> RuleResult | None:
        if facts.known_counterparty or facts.amount <= self.threshold:
            return None
        return RuleResult(
            self.score,
            f"the first {facts.money(facts.amount)} to this destination is above {facts.money(self.threshold)}",
        )


@dataclass(frozen=True, kw_only=True)
class VelocityRule(Rule):
    name: ClassVar[str] = "velocity"
    title: ClassVar[str] = "Many operations, or much money, out of one account in a short time"

    max_count: int = field(default=60, metadata=_minimum(1))
    count_window_minutes: int = field(default=10, metadata=_minimum(1))
    max_amount: int = field(default=10_000_000, metadata=_minimum(0))  # 100,000.00
    amount_window_minutes: int = field(default=60, metadata=_minimum(1))
    score: int = field(default=60, metadata=_minimum(0))

    def evaluate(self, facts: Facts) -> RuleResult | None:
        reasons = []
        count = facts.recent_count + 1  # this operation is one of them
        if count > self.max_count:
            reasons.append(
                f"{count} operations out of the account in {self.count_window_minutes} min (more than {self.max_count})"
            )
        total = facts.recent_amount + facts.amount
        if total > self.max_amount:
            reasons.append(
                f"{facts.money(total)} out of the account in {self.amount_window_minutes} min "
                f"(more than {facts.money(self.max_amount)})"
            )
        return RuleResult(self.score, "; ".join(reasons)) if reasons else None


@dataclass(frozen=True, kw_only=True)
class NightTimeRule(Rule):
    name: ClassVar[str] = "night_time"
    title: ClassVar[str] = "A customer sending a large amount at night"

    starts: str = "20:00"
    ends: str = "06:00"
    time_zone: str = "America/Sao_Paulo"
    threshold: int = field(default=100_000, metadata=_minimum(0))  # 1,000.00
    score: int = field(default=20, metadata=_minimum(0))

    def problems(self) -> dict[str, str]:
        problems = {}
        for name in ("starts", "ends"):
            try:
                time.fromisoformat(getattr(self, name))
            except ValueError:
                problems[name] = "must be a time of day, HH:MM"
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems["time_zone"] = "must be an IANA time zone, e.g. America/Sao_Paulo"
        return problems

    def is_night(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.time_zone)).time()
        starts, ends = time.fromisoformat(self.starts), time.fromisoformat(self.ends)
        if starts <= ends:
            return starts <= local < ends
        return local >= starts or local < ends  # the night spans midnight

    def evaluate(self, facts: Facts) -> RuleResult | None:
        # Staff and the bank's services act on reviewed instructions: only a customer's own token counts.
        if not facts.initiated_by_customer or facts.amount <= self.threshold or not self.is_night(facts.occurred_at):
            return None
        local = facts.occurred_at.astimezone(ZoneInfo(self.time_zone))
        return RuleResult(
            self.score,
            f"{facts.money(facts.amount)} at {local:%H:%M} {self.time_zone}, between {self.starts} and {self.ends}, "
            f"above {facts.money(self.threshold)}",
        )


@dataclass(frozen=True, kw_only=True)
class RoundTripRule(Rule):
    name: ClassVar[str] = "round_trip"
    title: ClassVar[str] = "Money sent back to the account it came from"

    window_minutes: int = field(default=10, metadata=_minimum(1))
    threshold: int = field(default=100_000, metadata=_minimum(0))  # 1,000.00
    score: int = field(default=50, metadata=_minimum(0))

    def evaluate(self, facts: Facts) -> RuleResult | None:
        if not facts.returning_money or facts.amount <= self.threshold:
            return None
        return RuleResult(
            self.score,
            f"{facts.money(facts.amount)} goes back to an account that sent money here within "
            f"{self.window_minutes} min, above {facts.money(self.threshold)}",
        )


# The catalogue, in the order the rules are evaluated and listed.
CATALOGUE: dict[str, type[Rule]] = {
    rule.name: rule
    for rule in (
        DenyListRule,
        AmountRule,
        NewAccountRule,
        NewBeneficiaryRule,
        VelocityRule,
        NightTimeRule,
        RoundTripRule,
    )
}


@dataclass(frozen=True, slots=True)
class Windows:
    """How far back the facts look, from the rules' parameters."""

    count: timedelta
    amount: timedelta
    round_trip: timedelta


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: str
    score: int
    fired: tuple[FiredRule, ...]


@dataclass(frozen=True, slots=True)
class RuleConfiguration:
    """A row of the rule table, as plain data."""

    name: str
    enabled: bool
    parameters: Mapping[str, Any]
    version: int


@dataclass(frozen=True)
class RuleSet:
    """The rules in force; `revision` names the state of the rule table they were read from
    (None: a table nobody has written, where every rule runs with its defaults)."""

    revision: str | None
    rules: tuple[Rule, ...]  # every rule of the catalogue, configured
    enabled: frozenset[str]

    @classmethod
    def of(cls, configurations: Iterable[RuleConfiguration], *, revision: str | None) -> RuleSet:
        """The catalogue configured by the rule table's rows; a rule without a row runs with its
        defaults (version 1), so a table emptied by accident never switches screening off. A row
        whose parameters no longer validate is refused loudly rather than guessed at."""
        rows = {configuration.name: configuration for configuration in configurations}
        rules = []
        enabled = set()
        for name, rule_class in CATALOGUE.items():
            row = rows.get(name)
            if row is None:
                rules.append(rule_class())
                enabled.add(name)
                continue
            rules.append(rule_class.configured(row.parameters, version=row.version))
            if row.enabled:
                enabled.add(name)
        return cls(revision=revision, rules=tuple(rules), enabled=frozenset(enabled))

    def rule(self, name: str) -> Rule:
        return next(rule for rule in self.rules if rule.name == name)

    def versions(self) -> dict[str, int]:
        """The enabled rules and their versions: what a screening was judged by."""
        return {rule.name: rule.version for rule in self.rules if rule.name in self.enabled}

    def windows(self) -> Windows:
        velocity = self.rule(VelocityRule.name)
        round_trip = self.rule(RoundTripRule.name)
        assert isinstance(velocity, VelocityRule)
        assert isinstance(round_trip, RoundTripRule)
        return Windows(
            count=timedelta(minutes=velocity.count_window_minutes),
            amount=timedelta(minutes=velocity.amount_window_minutes),
            round_trip=timedelta(minutes=round_trip.window_minutes),
        )

    def judge(self, facts: Facts) -> Verdict:
        fired = []
        decision = APPROVE
        for rule in self.rules:
            if rule.name not in self.enabled:
                continue
            result = rule.evaluate(facts)
            if result is None:
                continue
            fired.append(rule.fired(result))
            if rule.action == REJECT:
                decision = REJECT
            elif decision == APPROVE:
                decision = REVIEW
        return Verdict(decision=decision, score=sum(f.score for f in fired), fired=tuple(fired))
