from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.transactions.models import Deposit, Transfer
from fintech.api.serializers import MoneyInput, QueryInput, StrictInputSerializer


class TransferInput(MoneyInput):
    from_account_id = serializers.UUIDField()
    to_account_id = serializers.UUIDField()
    description = serializers.CharField(max_length=140, required=False, allow_blank=True, default="")


MAX_BATCH = 1000


class TransferBatchItemInput(TransferInput):
    id = serializers.UUIDField(help_text="Chosen by the client: the idempotency key of this transfer.")


class TransferBatchInput(StrictInputSerializer):
    transfers: serializers.ListSerializer[Any] = serializers.ListSerializer(
        child=TransferBatchItemInput(), min_length=1, max_length=MAX_BATCH
    )


class DepositInput(MoneyInput):
    account_id = serializers.UUIDField()
    reference = serializers.CharField(max_length=120)


class TransferListQuery(QueryInput):
    account_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=Transfer.Status.values, required=False)


class TransferOutput(serializers.ModelSerializer[Transfer]):
    class Meta:
        model = Transfer
        fields = [
            "id",
            "from_account_id",
            "to_account_id",
            "amount",
            "currency",
            "description",
            "status",
            "failure_code",
            "journal_transaction_id",
            "created_at",
            "updated_at",
            "completed_at",
        ]
        read_only_fields = fields


class DepositOutput(serializers.ModelSerializer[Deposit]):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Deposit
        fields = [
            "id",
            "account_id",
            "amount",
            "currency",
            "reference",
            "status",
            "journal_transaction_id",
            "created_at",
        ]
        read_only_fields = fields

    def get_status(self, deposit: Deposit) -> str:
        return "completed"


class TransferBatchItemOutput(serializers.Serializer[Any]):
    """One transfer of a batch: `status` is the HTTP status it would have had alone (201 done,
    202 in flight, 4xx refused); a refusal carries its problem details."""

    id = serializers.UUIDField()
    status = serializers.IntegerField()
    replayed = serializers.BooleanField(help_text="The id came before with the same transfer: this is that one.")
    transfer = TransferOutput(required=False, allow_null=True)
    problem = serializers.DictField(required=False, allow_null=True, help_text="RFC 9457 problem details.")


class TransferBatchOutput(serializers.Serializer[Any]):
    results = TransferBatchItemOutput(many=True)
