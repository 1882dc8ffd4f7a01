"""What the customers API reads and answers. The document and phone are always masked; the
e-mail and birth date appear whole only in one customer read by staff or by the customer itself
(docs/architecture.md, "Personal data", says why)."""

from __future__ import annotations

from datetime import date

from rest_framework import serializers

from apps.customers.models import Customer
from fintech.api.serializers import QueryInput, StrictInputSerializer


class CustomerCreateInput(StrictInputSerializer):
    name = serializers.CharField(max_length=200, trim_whitespace=True)
    email = serializers.EmailField(max_length=254)
    document = serializers.CharField(max_length=32, help_text="CPF (11 digits) or CNPJ (14); punctuation ignored.")
    birth_date = serializers.DateField(required=False, allow_null=True)
    phone = serializers.CharField(
        max_length=32,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="E.164, e.g. +5511987654321 (spaces, dashes and parentheses ignored). Optional.",
    )
    language = serializers.ChoiceField(
        choices=Customer.Language.values,
        required=False,
        default=Customer.Language.PT_BR.value,
        help_text="The language of the bank's notices to the customer (pt-BR by default).",
    )

    def validate_birth_date(self, value: date | None) -> date | None:
        if value is not None and (value > date.today() or value.year < 1900):
            raise serializers.ValidationError("Must be a date between 1900 and today.")
        return value


class CustomerRejectInput(StrictInputSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class CustomerListQuery(QueryInput):
    status = serializers.ChoiceField(choices=Customer.Status.values, required=False)


class CustomerOutput(serializers.ModelSerializer[Customer]):
    """A customer in a list or in the answer to a command: personal data masked."""

    email = serializers.CharField(
        source="masked_email", read_only=True, allow_null=True, help_text="Masked, e.g. a***@e***.com."
    )
    phone = serializers.CharField(
        source="masked_phone", read_only=True, allow_null=True, help_text="Masked, e.g. +55*******4321."
    )
    document = serializers.CharField(
        source="masked_document", read_only=True, allow_null=True, help_text="Masked, e.g. ***.982.247-**."
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "document",
            "document_type",
            "status",
            "language",
            "created_at",
            "erased_at",
        ]
        read_only_fields = fields


class CustomerDetailOutput(CustomerOutput):
    """One customer read by staff or by the customer itself: the e-mail and birth date whole."""

    email = serializers.EmailField(read_only=True, allow_null=True)
    birth_date = serializers.DateField(read_only=True, allow_null=True)

    class Meta(CustomerOutput.Meta):
        fields = [*CustomerOutput.Meta.fields[:4], "birth_date", *CustomerOutput.Meta.fields[4:]]
        read_only_fields = fields
