from datetime import date

import pytest
from django.core.exceptions import FieldError
from django.db import connection

from apps.customers import errors, public, selectors, services
from apps.customers.models import Customer
from fintech.errors import ValidationFailed
from outbox.models import OutboxEvent
from outbox.publisher import PublishOutsideTransaction, publish

pytestmark = pytest.mark.django_db


def make_customer(document="529.982.247-25", **extra):
    return services.customer_create(name=" Ana Souza ", email="Ana@Example.com", document=document, **extra)


def stored_row(customer_id):
    """The row as the database holds it, below the ORM's decryption."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, email, phone, document, document_index, birth_date FROM customers_customer WHERE id = %s",
            [Customer._meta.pk.get_db_prep_value(customer_id, connection)],
        )
        columns = [c[0] for c in cursor.description]
        return dict(zip(columns, cursor.fetchone(), strict=True))


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
    with pytest.raises(errors.DuplicateDocument):
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
    with pytest.raises(errors.KycAlreadyDecided):
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


def test_personal_data_is_encrypted_at_rest_and_read_back_in_clear():
    customer = make_customer(birth_date=date(1990, 4, 1), phone="+55 11 98765-4321")
    row = stored_row(customer.id)
    for column in ("email", "phone", "document", "birth_date"):
        assert row[column].startswith("v1."), column
    assert "52998224725" not in str(row)
    assert "ana@example.com" not in str(row)
    assert "5511987654321" not in str(row)
    assert "1990-04-01" not in str(row)
    assert row["name"] == "Ana Souza"
    assert row["document_index"] == selectors.document_index("52998224725")
    again = Customer.objects.get(pk=customer.id)
    assert (again.email, again.phone, again.document, again.birth_date) == (
        "ana@example.com",
        "+5511987654321",
        "52998224725",
        date(1990, 4, 1),
    )
    assert again.masked_phone == "+55*******4321"


def test_the_document_is_found_through_its_blind_index_not_its_ciphertext():
    customer = make_customer()
    assert selectors.customer_find_by_document(digits="52998224725") == customer
    assert selectors.customer_find_by_document(digits="11144477735") is None
    with pytest.raises(FieldError, match="encrypted"):
        Customer.objects.filter(document="52998224725").exists()
    with pytest.raises(FieldError, match="encrypted"):
        Customer.objects.filter(email__icontains="ana").exists()
    assert Customer.objects.filter(phone__isnull=True).count() == 1


def test_an_invalid_phone_writes_nothing():
    with pytest.raises(ValidationFailed) as error:
        make_customer(phone="98765-4321")
    assert error.value.code == "invalid_phone"
    assert "98765-4321" not in str(error.value.detail)
    assert not Customer.objects.exists()


def test_erase_empties_the_personal_data_and_publishes_customer_erased():
    customer = make_customer(birth_date=date(1990, 4, 1), phone="+5511987654321")
    services.customer_reject(customer_id=customer.id, reviewer="kyc-1", reason="Ana's ID looked forged")
    erased = services.customer_erase(customer_id=customer.id, erased_by="dpo-1")
    assert erased.is_erased
    row = stored_row(customer.id)
    assert row == {
        "name": "erased",
        "email": None,
        "phone": None,
        "document": None,
        "document_index": None,
        "birth_date": None,
    }
    again = Customer.objects.get(pk=customer.id)
    assert again.status == "rejected"  # the KYC outcome and the dates stay
    assert again.kyc_reviewed_by == "kyc-1"
    assert again.kyc_reason == ""
    assert again.document_type == "cpf"
    assert str(again) == "erased (no document)"
    event = OutboxEvent.objects.get(event_type="customer.erased")
    assert event.envelope["data"]["customer_id"] == str(customer.id)
    assert event.envelope["data"]["erased_by"] == "dpo-1"
    assert public.customer_kyc_status(customer.id) == "erased"


def test_a_second_erasure_changes_nothing():
    customer = make_customer()
    first = services.customer_erase(customer_id=customer.id, erased_by="dpo-1")
    second = services.customer_erase(customer_id=customer.id, erased_by="dpo-2")
    assert second.erased_at == first.erased_at
    assert OutboxEvent.objects.filter(event_type="customer.erased").count() == 1


def test_erasing_an_unknown_customer_is_refused():
    import uuid

    with pytest.raises(errors.CustomerNotFound):
        services.customer_erase(customer_id=uuid.uuid4(), erased_by="dpo-1")
