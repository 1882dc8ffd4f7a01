"""The back office of the fraud context: the review queue (alerts, what fired and what the rules
saw, approve and reject), the rules (switch on or off, tune: group fraud-admin), the deny list.

Every change goes through the context's services, which version the rules and write the
decision or the change to the audit trail; the admin's own log records the edit as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from apps.fraud import services
from apps.fraud.models import Alert, DenyListEntry, FraudRule, FraudRuleVersion, Screening
from apps.fraud.rules import CATALOGUE, InvalidParameters
from fintech.backoffice import ReadOnly
from fintech.errors import DomainError
from fintech.money import Money

Decide = Callable[..., Alert]


def _admin_actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def _money(amount: int, currency: str) -> str:
    return str(Money(amount, currency))


class RuleFiredFilter(admin.SimpleListFilter):
    title = "rule fired"
    parameter_name = "rule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in CATALOGUE]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(screening__fired_rules__rule=self.value())
        return queryset


@admin.register(Alert)
class ReviewQueueAdmin(ReadOnly, admin.ModelAdmin[Alert]):
    """The review queue: filter on status `review` for what waits for an analyst."""

    list_display = ["subject_id", "kind", "amount", "score", "rules_fired", "status", "raised_at", "decided_by"]
    list_filter = ["status", RuleFiredFilter, "screening__subject_type"]
    search_fields = ["=subject_id", "=account_id"]
    list_select_related = ["screening"]
    date_hierarchy = "raised_at"
    actions = ["approve_selected", "reject_selected"]
    fields = (
        "subject_id",
        "kind",
        "account_id",
        "counterparty",
        "amount",
        "status",
        "score",
        "fired_rules",
        "inputs",
        "rule_versions",
        "initiated_at",
        "raised_at",
        "decided_at",
        "decided_by",
        "decision_reason",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alert]:
        return super().get_queryset(request).prefetch_related("screening__fired_rules")

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("fraud.decide_review")

    @admin.display(description="Operation")
    def kind(self, alert: Alert) -> str:
        return alert.screening.subject_type

    @admin.display(description="Amount")
    def amount(self, alert: Alert) -> str:
        return _money(alert.screening.amount, alert.screening.currency)

    @admin.display(description="Score")
    def score(self, alert: Alert) -> int:
        return alert.screening.score

    @admin.display(description="Destination")
    def counterparty(self, alert: Alert) -> str:
        return alert.screening.counterparty

    @admin.display(description="Initiated at")
    def initiated_at(self, alert: Alert) -> Any:
        return alert.screening.occurred_at

    @admin.display(description="Rules")
    def rules_fired(self, alert: Alert) -> str:
        return ", ".join(f"{fired.rule} ({fired.score})" for fired in alert.screening.fired_rules.all())

    @admin.display(description="Rules that fired")
    def fired_rules(self, alert: Alert) -> str:
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><strong>{}</strong> v{}, score {}: {}</li>",
                ((r.rule, r.version, r.score, r.reason) for r in alert.screening.fired_rules.all()),
            ),
        )

    @admin.display(description="What the rules saw")
    def inputs(self, alert: Alert) -> str:
        return format_html("<pre>{}</pre>", json.dumps(alert.screening.inputs, indent=2, sort_keys=True))

    @admin.display(description="Rules in force (versions)")
    def rule_versions(self, alert: Alert) -> str:
        versions = alert.screening.rule_versions
        return ", ".join(f"{name} v{version}" for name, version in sorted(versions.items()))

    @admin.action(description="Approve the selected reviews", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Alert]) -> TemplateResponse | None:
        return self._decide(request, queryset, services.review_approve, "approve_selected", "Approve")

    @admin.action(description="Reject the selected reviews", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Alert]) -> TemplateResponse | None:
        return self._decide(request, queryset, services.review_reject, "reject_selected", "Reject")

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[Alert], command: Decide, action: str, verb: str
    ) -> TemplateResponse | None:
        if request.POST.get("confirmed") != "yes":
            # First ask for the reason, on a page that shows what is being decided.
            return TemplateResponse(
                request,
                "admin/fraud/alert/decide_reviews.html",
                {
                    **self.admin_site.each_context(request),
                    "title": f"{verb} the selected reviews",
                    "alerts": list(queryset.prefetch_related("screening__fired_rules")),
                    "action": action,
                    "verb": verb,
                    "opts": self.model._meta,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        reason = request.POST.get("reason", "")
        done = 0
        for alert in queryset:
            try:
                command(
                    subject_id=alert.subject_id,
                    decided_by=_admin_actor(request),
                    decider_kind=services.ADMIN,
                    reason=reason,
                )
                done += 1
            except DomainError as error:
                self.message_user(request, f"{alert.subject_id}: {error.detail}", messages.WARNING)
        self.message_user(request, f"{verb}d {done} review(s).")
        return None


@admin.register(Screening)
class ScreeningAdmin(ReadOnly, admin.ModelAdmin[Screening]):
    list_display = ["subject_id", "subject_type", "account_id", "amount", "currency", "decision", "score"]
    list_filter = ["decision", "subject_type", "currency"]
    search_fields = ["=subject_id", "=account_id"]
    date_hierarchy = "screened_at"


class FraudRuleForm(forms.ModelForm[FraudRule]):
    class Meta:
        model = FraudRule
        fields = ["enabled", "parameters"]
        help_texts = {"parameters": "JSON. A parameter left out takes its default; amounts in minor units."}

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        parameters = cleaned.get("parameters")
        rule_class = CATALOGUE.get(self.instance.name)
        if rule_class is None:
            raise forms.ValidationError("This rule is not in the catalogue of the running code.")
        if not isinstance(parameters, dict):
            self.add_error("parameters", "The parameters are a JSON object.")
            return cleaned
        try:
            rule_class.configured(parameters, version=self.instance.version + 1)
        except InvalidParameters as error:
            for name, message in error.errors.items():
                self.add_error("parameters", f"{name}: {message}")
        return cleaned


@admin.register(FraudRule)
class FraudRuleAdmin(admin.ModelAdmin[FraudRule]):
    """Changing a rule needs the `fraud.change_fraudrule` permission (group fraud-admin)."""

    form = FraudRuleForm
    list_display = ["name", "title", "enabled", "version", "updated_by", "updated_at"]
    readonly_fields = ["name", "title", "action", "version", "defaults", "history", "updated_by", "updated_at"]
    fields = ["name", "title", "action", "enabled", "parameters", "defaults", "version", "history", "updated_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the catalogue is code; its rules are rows from the start

    def has_delete_permission(self, request: HttpRequest, obj: FraudRule | None = None) -> bool:
        return False  # switch a rule off instead: its history stays

    @admin.display(description="What it looks for")
    def title(self, rule: FraudRule) -> str:
        rule_class = CATALOGUE.get(rule.name)
        return rule_class.title if rule_class else "(not in the running code)"

    @admin.display(description="When it fires")
    def action(self, rule: FraudRule) -> str:
        rule_class = CATALOGUE.get(rule.name)
        return rule_class.action if rule_class else ""

    @admin.display(description="Defaults")
    def defaults(self, rule: FraudRule) -> str:
        rule_class = CATALOGUE.get(rule.name)
        return json.dumps(rule_class.default_parameters(), sort_keys=True) if rule_class else ""

    @admin.display(description="History")
    def history(self, rule: FraudRule) -> str:
        versions = FraudRuleVersion.objects.filter(rule=rule.name)[:20]
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>v{} by {} at {}: {} {}</li>",
                (
                    (v.version, v.changed_by, v.changed_at, "on" if v.enabled else "off", json.dumps(v.parameters))
                    for v in versions
                ),
            ),
        )

    def save_model(self, request: HttpRequest, obj: FraudRule, form: forms.ModelForm[FraudRule], change: bool) -> None:
        changed = services.rule_change(
            name=obj.name,
            enabled=form.cleaned_data["enabled"],
            parameters=form.cleaned_data["parameters"],
            changed_by=_admin_actor(request),
            changer_kind=services.ADMIN,
        )
        obj.version, obj.parameters, obj.updated_by, obj.updated_at = (
            changed.version,
            changed.parameters,
            changed.updated_by,
            changed.updated_at,
        )


class DenyListEntryForm(forms.ModelForm[DenyListEntry]):
    class Meta:
        model = DenyListEntry
        fields = ["kind", "value", "reason"]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if cleaned.get("kind") and cleaned.get("value"):
            try:
                # The form the screening compares, so that the uniqueness check sees it too.
                cleaned["value"] = services.deny_list_value(kind=cleaned["kind"], value=cleaned["value"])
            except DomainError as error:
                self.add_error("value", error.detail)
        return cleaned


@admin.register(DenyListEntry)
class DenyListAdmin(admin.ModelAdmin[DenyListEntry]):
    form = DenyListEntryForm
    list_display = ["kind", "value", "reason", "added_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["value"]

    def has_change_permission(self, request: HttpRequest, obj: DenyListEntry | None = None) -> bool:
        return False  # an entry is added or removed, never rewritten

    def save_model(
        self, request: HttpRequest, obj: DenyListEntry, form: forms.ModelForm[DenyListEntry], change: bool
    ) -> None:
        entry = services.deny_list_add(
            kind=obj.kind,
            value=obj.value,
            reason=obj.reason,
            added_by=_admin_actor(request),
            adder_kind=services.ADMIN,
        )
        obj.pk, obj.value, obj.added_by, obj.created_at = entry.pk, entry.value, entry.added_by, entry.created_at
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: DenyListEntry) -> None:
        services.deny_list_remove(entry_id=obj.pk, removed_by=_admin_actor(request), remover_kind=services.ADMIN)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[DenyListEntry]) -> None:
        for entry in queryset:
            self.delete_model(request, entry)
