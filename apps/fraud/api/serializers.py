from __future__ import annotations

from rest_framework import serializers

from apps.fraud.models import Alert, FiredRule
from apps.fraud.rules import CATALOGUE
from fintech.api.serializers import PeriodQuery, StrictInputSerializer


class AlertListQuery(PeriodQuery):
    period_names = ("raised_from", "raised_to")
    status = serializers.ChoiceField(choices=Alert.Status.values, required=False)
    account_id = serializers.UUIDField(required=False)
    rule = serializers.ChoiceField(choices=list(CATALOGUE), required=False)


class ReviewDecisionInput(StrictInputSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class FiredRuleOutput(serializers.ModelSerializer[FiredRule]):
    class Meta:
        model = FiredRule
        fields = ["rule", "version", "score", "reason"]
        read_only_fields = fields


class AlertOutput(serializers.ModelSerializer[Alert]):
    """An alert as the back office sees it: the operation, what the rules said and saw, and the decision."""

    alert_id = serializers.UUIDField(source="id")
    subject_type = serializers.CharField(source="screening.subject_type")
    customer_id = serializers.UUIDField(source="screening.customer_id")
    counterparty = serializers.CharField(source="screening.counterparty")
    amount = serializers.IntegerField(source="screening.amount")
    currency = serializers.CharField(source="screening.currency")
    decision = serializers.ChoiceField(
        source="screening.decision", choices=["review", "reject"], help_text="What the rules decided."
    )
    score = serializers.IntegerField(source="screening.score")
    rules = FiredRuleOutput(source="screening.fired_rules", many=True, help_text="The rules that fired.")
    rule_versions = serializers.DictField(
        source="screening.rule_versions", child=serializers.IntegerField(), help_text="The rules in force."
    )
    inputs = serializers.DictField(source="screening.inputs", help_text="The facts the rules saw.")
    initiated_at = serializers.DateTimeField(source="screening.occurred_at")

    class Meta:
        model = Alert
        fields = [
            "alert_id",
            "subject_type",
            "subject_id",
            "account_id",
            "customer_id",
            "counterparty",
            "amount",
            "currency",
            "decision",
            "score",
            "rules",
            "rule_versions",
            "inputs",
            "status",
            "initiated_at",
            "raised_at",
            "decided_at",
            "decided_by",
            "decision_reason",
        ]
        read_only_fields = fields
