import pytest

from apps.customers import services
from apps.customers.models import Customer
from fintech.errors import ValidationFailed
from outbox.models import OutboxEvent
from outbox.publisher import PublishOutsideTransaction, publish

pytestmark = pytest.mark.django_db


def make_customer(document="529.982.247-25"):
    return services.customer_create(name=" Ana Souza ", email="Ana@Example.com", document=document)


def test_create_normalizes_and_publishes_customer_created_without_personal_data():
    customer = make_customer()
    assert customer.name == "Ana Souza"
    assert customer.email == "ana@example.com"
    assert customer.document == "52998224725"
    assert customer.status == Customer.Status.PENDING
    event = OutboxEvent.objects.get(event_type="customer.created")
    assert event.aggregate_id == str(customer.id)
    assert event.envelope["data"] == {
        "customer_id": str(customer.id),
        "document_type": "cpf",
        "status": "pending",
        "created_at": event.envelope["time"],
    }
    assert "52998224725" not in str(event.envelope)
    assert "ana@example.com" not in str(event.envelope)


def test_duplicate_document_is_a_conflict_and_writes_nothing():
    make_customer()
    with pytest.raises(services.DuplicateDocument):
        make_customer("52998224725")
    assert Customer.objects.count() == 1
    assert OutboxEvent.objects.count() == 1


def test_invalid_document_writes_nothing():
    with pytest.raises(ValidationFailed) as error:
        make_customer("529.982.247-24")
    assert error.value.code == "invalid_document"
    assert not Customer.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_verify_then_reject_is_refused():
    customer = make_customer()
    verified = services.customer_verify(customer_id=customer.id, reviewer="kyc-1")
    assert verified.status == "verified"
    assert verified.kyc_reviewed_by == "kyc-1"
    with pytest.raises(services.KycAlreadyDecided):
        services.customer_reject(customer_id=customer.id, reviewer="kyc-2", reason="late")
    assert list(OutboxEvent.objects.values_list("event_type", flat=True)) == ["customer.created", "customer.verified"]


def test_reject_records_the_reason():
    customer = make_customer()
    rejected = services.customer_reject(customer_id=customer.id, reviewer="kyc-1", reason="document mismatch")
    assert rejected.status == "rejected"
    event = OutboxEvent.objects.get(event_type="customer.rejected")
    assert event.envelope["data"]["reason"] == "document mismatch"


@pytest.mark.django_db(transaction=True)
def test_publish_outside_a_transaction_is_refused():
    from apps.customers.events import CustomerVerified

    event = CustomerVerified(
        customer_id="00000000-0000-0000-0000-000000000001", reviewed_by="x", verified_at="2026-01-01T00:00:00Z"
    )
    with pytest.raises(PublishOutsideTransaction):
        publish(event)
    assert not OutboxEvent.objects.exists()
