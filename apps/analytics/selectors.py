"""Questions to the analytics context: a period's figures (totals and per day), the fraud rate.

The fraud rate of a day (or a period) and currency is the fraud alerts raised over the
operations screened (approved + held for review + rejected by the screening). It is None when
nothing was screened: a rate over nothing is not zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from django.db.models import QuerySet, Sum

from apps.analytics.facts import (
    CREDITS,
    CUSTOMERS,
    DEPOSITS,
    FRAUD_ALERTS,
    FRAUD_DECISIONS,
    FRAUD_REVIEWS,
    NO_CURRENCY,
    PAYMENTS,
    TRANSFERS,
)
from apps.analytics.models import DailyFigure, Fact


def money_of_subjects(*, subject_ids: Iterable[str], metrics: Iterable[str]) -> dict[tuple[str, str], tuple[str, int]]:
    """(subject, metric) -> (currency, amount) of the facts recorded for these subjects."""
    return {
        (subject, metric): (currency, amount)
        for subject, metric, currency, amount in Fact.objects.filter(
            subject_id__in=set(subject_ids), metric__in=set(metrics)
        ).values_list("subject_id", "metric", "currency", "amount")
    }


def figures_between(*, day_from: date, day_to: date) -> QuerySet[DailyFigure]:
    return DailyFigure.objects.filter(day__gte=day_from, day__lte=day_to).order_by("day", "currency", "metric")


@dataclass(frozen=True, slots=True)
class Tally:
    count: int = 0
    volume: int = 0


@dataclass
class CurrencyFigures:
    """A period's (or a day's) figures in one currency."""

    currency: str
    figures: dict[str, Tally] = field(default_factory=dict)

    def tally(self, metric: str) -> Tally:
        return self.figures.get(metric, Tally())

    @property
    def screened(self) -> int:
        return sum(self.tally(metric).count for metric in FRAUD_DECISIONS)

    @property
    def fraud_rate(self) -> float | None:
        screened = self.screened
        return round(self.tally(FRAUD_ALERTS).count / screened, 6) if screened else None

    def as_dict(self) -> dict[str, object]:
        def pair(metric: str) -> dict[str, int]:
            tally = self.tally(metric)
            return {"count": tally.count, "volume": tally.volume}

        return {
            "currency": self.currency,
            "transfers": {metric.split(".", 1)[1]: pair(metric) for metric in TRANSFERS},
            "deposits": pair(DEPOSITS),
            "payments": {metric.split(".", 1)[1]: pair(metric) for metric in PAYMENTS},
            "credits": {metric.split(".", 1)[1]: pair(metric) for metric in CREDITS},
            "fraud": {
                "screened": self.screened,
                "decisions": {metric.rsplit(".", 1)[1]: self.tally(metric).count for metric in FRAUD_DECISIONS},
                "alerts": self.tally(FRAUD_ALERTS).count,
                "rate": self.fraud_rate,
                "reviews": {metric.rsplit(".", 1)[1]: self.tally(metric).count for metric in FRAUD_REVIEWS},
            },
        }


def _customers(figures: dict[str, Tally]) -> dict[str, int]:
    return {metric.split(".", 1)[1]: figures.get(metric, Tally()).count for metric in CUSTOMERS}


@dataclass
class Summary:
    day_from: date
    day_to: date
    totals: list[CurrencyFigures]
    customers: dict[str, int]
    days: list[dict[str, object]]

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.day_from,
            "to": self.day_to,
            "totals": [figures.as_dict() for figures in self.totals],
            "customers": self.customers,
            "days": self.days,
        }


def summary(*, day_from: date, day_to: date) -> Summary:
    """Totals per currency over the period and the series per day (days with no figure left out)."""
    per_day: dict[date, dict[str, CurrencyFigures]] = defaultdict(dict)
    totals: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for figure in figures_between(day_from=day_from, day_to=day_to):
        per_day[figure.day].setdefault(figure.currency, CurrencyFigures(figure.currency)).figures[figure.metric] = (
            Tally(figure.count, figure.volume)
        )
        total = totals[figure.currency][figure.metric]
        total[0] += figure.count
        total[1] += figure.volume

    def money_only(by_currency: dict[str, CurrencyFigures]) -> list[CurrencyFigures]:
        return [by_currency[currency] for currency in sorted(by_currency) if currency != NO_CURRENCY]

    period = {
        currency: CurrencyFigures(currency, {metric: Tally(*pair) for metric, pair in metrics.items()})
        for currency, metrics in totals.items()
    }
    days = [
        {
            "day": day,
            "totals": [figures.as_dict() for figures in money_only(per_day[day])],
            "customers": _customers(per_day[day].get(NO_CURRENCY, CurrencyFigures(NO_CURRENCY)).figures),
        }
        for day in sorted(per_day)
    ]
    return Summary(
        day_from=day_from,
        day_to=day_to,
        totals=money_only(period),
        customers=_customers(period.get(NO_CURRENCY, CurrencyFigures(NO_CURRENCY)).figures),
        days=days,
    )


def totals_by_metric() -> list[tuple[str, str, int, int]]:
    """(metric, currency, count, volume) summed over every day: the business counters."""
    return [
        (row["metric"], row["currency"], int(row["count_sum"] or 0), int(row["volume_sum"] or 0))
        for row in DailyFigure.objects.values("metric", "currency")
        .annotate(count_sum=Sum("count"), volume_sum=Sum("volume"))
        .order_by("metric", "currency")
    ]
