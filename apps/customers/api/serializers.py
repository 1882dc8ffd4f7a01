from __future__ import annotations

from datetime import date
from typing import Any

from rest_framework import serializers

from apps.customers.models import Customer
from fintech.api.serializers import StrictInputSerializer


class CustomerCreateInput(StrictInputSerializer):
    name = serializers.CharField(max_length=200, trim_whitespace=True)
    email = serializers.EmailField(max_length=254)
    document = serializers.CharField(max_length=32, help_text="CPF (11 digits) or CNPJ (14); punctuation ignored.")
    birth_date = serializers.DateField(required=False, allow_null=True)

    def validate_birth_date(self, value: date | None) -> date | None:
        if value is not None and (value > date.today() or value.year < 1900):
            raise serializers.ValidationError("Must be a date between 1900 and today.")
        return value


class CustomerRejectInput(StrictInputSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CustomerOutput(serializers.ModelSerializer[Customer]):
    document = serializers.CharField(source="masked_document", read_only=True)

    class Meta:
        model = Customer
        fields = ["id", "name", "email", "document", "document_type", "birth_date", "status", "created_at"]
        read_only_fields = fields

    def to_representation(self, instance: Customer) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        return data
