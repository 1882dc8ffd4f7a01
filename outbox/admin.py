"""The spine in the back office: read-only; a dead letter is replayed by an action."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from fintech.backoffice import ReadOnly
from outbox import dispatcher
from outbox.models import DeadLetter, InboxRecord, OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnly, admin.ModelAdmin[OutboxEvent]):
    list_display = ["id", "event_type", "aggregate_id", "created_at", "dispatched_at", "sent_at"]
    list_filter = ["event_type", ("dispatched_at", admin.EmptyFieldListFilter), ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["=event_id", "=aggregate_id"]


@admin.register(InboxRecord)
class InboxRecordAdmin(ReadOnly, admin.ModelAdmin[InboxRecord]):
    list_display = ["handler", "event_id", "handled_at"]
    list_filter = ["handler"]
    search_fields = ["=event_id"]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnly, admin.ModelAdmin[DeadLetter]):
    list_display = ["id", "event_type", "handler", "attempts", "created_at", "replayed_at"]
    list_filter = ["handler", "event_type", ("replayed_at", admin.EmptyFieldListFilter)]
    search_fields = ["=event_id"]
    actions = ["replay"]

    @admin.action(description="Replay the selected dead letters now")
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        report = dispatcher.replay_dead_letters(dead_letter_ids=list(queryset.values_list("pk", flat=True)))
        level = messages.SUCCESS if not (report.failed or report.dead_lettered) else messages.WARNING
        self.message_user(
            request,
            f"Replayed {report.events} event(s): {report.handled} applied, {report.failed} failed again, "
            f"{report.dead_lettered} dead-lettered again.",
            level,
        )
