from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from apps.payments.models import Payment, PaymentStep
from apps.payments.services import beneficiary_of
from fintech.api.serializers import MoneyInput, QueryInput, StrictInputSerializer


class PaymentListQuery(QueryInput):
    account_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=Payment.Status.values, required=False)


class AccountBeneficiaryInput(StrictInputSerializer):
    name = serializers.CharField(max_length=140)
    document = serializers.CharField(max_length=32, help_text="CPF or CNPJ; dots, dashes and a slash are ignored.")
    bank_code = serializers.CharField(max_length=8, help_text="The ISPB of the beneficiary's bank: 8 digits.")
    branch = serializers.CharField(max_length=4)
    account_number = serializers.CharField(max_length=21)


class PixKeyBeneficiaryInput(StrictInputSerializer):
    pix_key = serializers.CharField(
        max_length=100, help_text="A CPF, a CNPJ, an e-mail, a phone in E.164 (+5511987654321) or a random key (UUID)."
    )


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="BeneficiaryInput",
        serializers=[AccountBeneficiaryInput, PixKeyBeneficiaryInput],
        resource_type_field_name=None,
    )
)
class BeneficiaryField(serializers.Field):  # type: ignore[type-arg]
    """Either shape; the checks of each field's content (check digits, ISPB, PIX key rules) are
    the payments context's (apps/payments/beneficiaries.py)."""

    default_error_messages = {"invalid": "An account (name, document, bank_code, branch, account_number) or a pix_key."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("invalid")
        shape = PixKeyBeneficiaryInput if "pix_key" in data else AccountBeneficiaryInput
        parsed = shape(data=data)
        if not parsed.is_valid():
            raise serializers.ValidationError(parsed.errors)
        return dict(parsed.validated_data)

    def to_representation(self, value: Any) -> Any:
        return value


class PaymentInput(MoneyInput):
    account_id = serializers.UUIDField()
    beneficiary = BeneficiaryField()


class BeneficiaryOutput(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=Payment.BeneficiaryKind.choices)
    name = serializers.CharField(required=False)
    document = serializers.CharField(required=False, help_text="Masked.")
    bank_code = serializers.CharField(required=False)
    branch = serializers.CharField(required=False)
    account_number = serializers.CharField(required=False, help_text="Masked: the last four characters.")
    pix_key_type = serializers.ChoiceField(choices=["cpf", "cnpj", "email", "phone", "evp"], required=False)
    pix_key = serializers.CharField(required=False, help_text="Masked.")


class PaymentStepOutput(serializers.ModelSerializer[PaymentStep]):
    class Meta:
        model = PaymentStep
        fields = ["step", "status", "detail", "at"]
        read_only_fields = fields


class PaymentOutput(serializers.ModelSerializer[Payment]):
    beneficiary = serializers.SerializerMethodField()
    history = PaymentStepOutput(many=True, read_only=True)
    overdue = serializers.SerializerMethodField(help_text="Flagged for operations: no answer from the network in time.")

    class Meta:
        model = Payment
        fields = [
            "id",
            "account_id",
            "amount",
            "currency",
            "status",
            "beneficiary",
            "end_to_end_id",
            "failure_code",
            "return_reason",
            "network_reference",
            "journal_transaction_id",
            "overdue",
            "created_at",
            "updated_at",
            "sent_at",
            "answered_at",
            "history",
        ]
        read_only_fields = fields

    @extend_schema_field(BeneficiaryOutput)
    def get_beneficiary(self, payment: Payment) -> dict[str, str]:
        return beneficiary_of(payment).masked()

    def get_overdue(self, payment: Payment) -> bool:
        return payment.overdue_since is not None and payment.status == Payment.Status.PENDING
