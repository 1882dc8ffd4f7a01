from __future__ import annotations

from django.db import models


class Fact(models.Model):
    """One business fact of one domain event: a transfer completed, a deposit, a fraud alert, ...

    Unique per (event id, metric): however often an event is delivered, and by however many
    consumers at once, it is counted once. The facts are the analytics context's record of the
    events; the daily figures are their sums, and `manage.py rebuild_analytics` recomputes them
    from here."""

    event_id = models.UUIDField()
    event_type = models.CharField(max_length=60)
    metric = models.CharField(max_length=40)
    day = models.DateField(help_text="The UTC day the event happened.")
    currency = models.CharField(max_length=3)
    amount = models.BigIntegerField(default=0, help_text="Minor units; 0 for counts without money.")
    subject_id = models.CharField(max_length=64, help_text="The transfer, payment, deposit, customer, ...")
    occurred_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_id", "metric"], name="one_fact_per_event_and_metric")]
        indexes = [
            models.Index(fields=["subject_id", "metric"], name="facts_of_subject"),
            models.Index(fields=["day"], name="facts_by_day"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} {self.amount} {self.currency} on {self.day}"


class DailyFigure(models.Model):
    """How many facts of a metric happened on a day, in a currency, and their volume."""

    day = models.DateField()
    metric = models.CharField(max_length=40)
    currency = models.CharField(max_length=3)
    count = models.BigIntegerField(default=0)
    volume = models.BigIntegerField(default=0, help_text="Minor units.")

    class Meta:
        ordering = ["-day", "metric", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["day", "metric", "currency"], name="one_figure_per_day_metric_currency")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} {self.currency}: {self.count} / {self.volume}"
