"""The bank's business figures for Prometheus (and the Grafana dashboards in deploy/grafana/).

Read from the daily figures when Prometheus scrapes, not counted in each process: every web
process, worker and consumer answers the same totals, which survive restarts and redeliveries
exactly as the figures do. Dashboards read them with `max()` across instances, not `sum()`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from apps.analytics import selectors
from apps.analytics.facts import ACCOUNTS_BLOCKED, CUSTOMERS, DEPOSITS, FRAUD_ALERTS, NOTIFICATIONS

logger = logging.getLogger(__name__)

# (family, help, label name, metric prefix): a metric "<prefix><value>" is one labelled series.
_LABELLED = (
    (
        "fintech_business_transfers",
        "Transfers by status (initiated, review, completed, failed)",
        "status",
        "transfers.",
    ),
    (
        "fintech_business_payments",
        "Outbound payments by outcome (initiated, review, settled, returned, failed)",
        "outcome",
        "payments.",
    ),
    (
        "fintech_business_inbound_credits",
        "Credits from other banks by outcome (credited, returned)",
        "outcome",
        "credits.",
    ),
    (
        "fintech_business_fraud_decisions",
        "Screenings by decision (approve, review, reject)",
        "decision",
        "fraud.decisions.",
    ),
    (
        "fintech_business_fraud_reviews",
        "Analysts' review outcomes (approved, rejected, expired)",
        "outcome",
        "fraud.reviews.",
    ),
)
# The families whose volume is exported too, in minor units of the currency.
_VOLUMES = {
    "transfers.": ("fintech_business_transfer_volume_minor", "Volume of transfers by status, in minor units"),
    "payments.": ("fintech_business_payment_volume_minor", "Volume of outbound payments by outcome, in minor units"),
    "credits.": (
        "fintech_business_inbound_credit_volume_minor",
        "Volume of credits from other banks by outcome, in minor units",
    ),
}


class BusinessFigures(Collector):
    def describe(self) -> Iterator[CounterMetricFamily]:
        """The families without reading them (the registry asks at registration, before any database)."""
        return self._families([])

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            totals = selectors.totals_by_metric()
        except DatabaseError as error:  # a scrape must not fail because the database is away
            logger.warning("business figures unavailable", extra={"error": str(error)[:300]})
            totals = []
        return self._families(totals)

    def _families(self, totals: list[tuple[str, str, int, int]]) -> Iterator[CounterMetricFamily]:
        families = {
            prefix: CounterMetricFamily(name, text, labels=[label, "currency"])
            for name, text, label, prefix in _LABELLED
        }
        volumes = {
            prefix: CounterMetricFamily(name, text, labels=[label, "currency"])
            for _, _, label, prefix in _LABELLED
            if prefix in _VOLUMES
            for name, text in [_VOLUMES[prefix]]
        }
        deposits = CounterMetricFamily("fintech_business_deposits", "Deposits", labels=["currency"])
        deposit_volume = CounterMetricFamily(
            "fintech_business_deposit_volume_minor", "Volume of deposits, in minor units", labels=["currency"]
        )
        alerts = CounterMetricFamily("fintech_business_fraud_alerts", "Fraud alerts raised", labels=["currency"])
        customers = CounterMetricFamily("fintech_business_customers", "Customers by KYC step", labels=["step"])
        blocked = CounterMetricFamily("fintech_business_accounts_blocked", "Accounts blocked")
        notifications = CounterMetricFamily("fintech_business_notifications", "Notifications recorded for delivery")
        blocked_count = notified = 0
        for metric, currency, count, volume in totals:
            for prefix, family in families.items():
                if metric.startswith(prefix):
                    value = metric[len(prefix) :]
                    family.add_metric([value, currency], count)
                    if prefix in volumes:
                        volumes[prefix].add_metric([value, currency], volume)
            if metric == DEPOSITS:
                deposits.add_metric([currency], count)
                deposit_volume.add_metric([currency], volume)
            elif metric == FRAUD_ALERTS:
                alerts.add_metric([currency], count)
            elif metric in CUSTOMERS:
                customers.add_metric([metric.split(".", 1)[1]], count)
            elif metric == ACCOUNTS_BLOCKED:
                blocked_count += count
            elif metric == NOTIFICATIONS:
                notified += count
        blocked.add_metric([], blocked_count)
        notifications.add_metric([], notified)
        yield from families.values()
        yield from volumes.values()
        yield from (deposits, deposit_volume, alerts, customers, blocked, notifications)


_collector: list[BusinessFigures] = []


def register_business_metrics() -> None:
    if not _collector:
        _collector.append(BusinessFigures())
        REGISTRY.register(_collector[0])
