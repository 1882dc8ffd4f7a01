from django.db import models


class Tally(models.Model):
    """How many times a probe handler applied an event, per event id."""

    handler = models.CharField(max_length=100)
    event_id = models.UUIDField()
    applied = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["handler", "event_id"], name="one_tally_per_delivery")]

    def __str__(self) -> str:
        return f"{self.handler} applied {self.event_id} x{self.applied}"


class FailureSwitch(models.Model):
    """While a row exists for a handler, that handler raises (a stand-in for a bug or an outage)."""

    handler = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return f"{self.handler} fails"
