from datetime import date

import pytest

from apps.customers import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def ana():
    return services.customer_create(
        name="Ana Souza",
        email="ana@example.com",
        document="529.982.247-25",
        phone="+5511987654321",
        birth_date=date(1990, 4, 1),
    )


def test_the_list_shows_only_masked_personal_data(admin_client, ana):
    page = admin_client.get("/admin/customers/customer/").content.decode()
    assert "Ana Souza" in page
    assert "***.982.247-**" in page
    assert "a***@e***.com" in page
    for plaintext in ("52998224725", "529.982.247-25", "ana@example.com", "5511987654321"):
        assert plaintext not in page


def test_a_whole_document_finds_its_customer_through_the_blind_index(admin_client, ana):
    services.customer_create(name="Bruno Lima", email="bruno@example.com", document="111.444.777-35")
    found = admin_client.get("/admin/customers/customer/", {"q": "529.982.247-25"}).content.decode()
    assert "Ana Souza" in found
    assert "Bruno Lima" not in found
    by_name = admin_client.get("/admin/customers/customer/", {"q": "Bruno"}).content.decode()
    assert "Bruno Lima" in by_name
    assert "Ana Souza" not in by_name


def test_one_customer_page_shows_the_email_and_masks_document_and_phone(admin_client, ana):
    page = admin_client.get(f"/admin/customers/customer/{ana.id}/change/").content.decode()
    assert "ana@example.com" in page
    assert "+55*******4321" in page
    assert "***.982.247-**" in page
    assert "52998224725" not in page
    assert "5511987654321" not in page
