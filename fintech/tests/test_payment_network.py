"""What the bank and the payment network must spell alike: end-to-end ids, the sealed
beneficiary under the shared key, the settlement file."""

import base64
import uuid
from datetime import UTC, datetime

import pytest

from fintech.crypto import CryptoError, keyring
from fintech.payment_network import (
    END_TO_END_ID,
    SettlementFileError,
    SettlementItem,
    is_ispb,
    new_end_to_end_id,
    read_settlement_file,
    seal_beneficiary,
    unseal_beneficiary,
    write_settlement_file,
)

BLOCK = {"kind": "pix_key", "pix_key_type": "email", "pix_key": "ana@example.com"}


def entry(kid: str, fill: int) -> str:
    return f"{kid}:{base64.b64encode(bytes([fill]) * 32).decode()}"


@pytest.fixture(autouse=True)
def shared_keys(settings):
    keyring.reset_caches()
    settings.FINTECH_PAYMENT_NETWORK_KEYS = [entry("n1", 7)]
    yield
    keyring.reset_caches()


def test_an_end_to_end_id_names_the_bank_and_the_minute_it_started():
    e2e = new_end_to_end_id(ispb="12345678", at=datetime(2026, 11, 30, 13, 5, 59, tzinfo=UTC))
    assert END_TO_END_ID.match(e2e)
    assert e2e.startswith("E12345678202611301305")
    assert new_end_to_end_id(ispb="12345678", at=datetime.now(UTC)) != new_end_to_end_id(
        ispb="12345678", at=datetime.now(UTC)
    )
    with pytest.raises(ValueError, match="8 digits"):
        new_end_to_end_id(ispb="1234", at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("code", "valid"), [("00000000", True), ("1234567", False), ("1234567a", False), ("١٢٣٤٥٦٧٨", False)]
)
def test_an_ispb_is_eight_ascii_digits(code, valid):
    assert is_ispb(code) is valid


def test_a_sealed_beneficiary_opens_only_for_its_payment_and_under_the_shared_keys(settings):
    payment_id = uuid.uuid4()
    token = seal_beneficiary(BLOCK, payment_id=payment_id)
    assert "ana@example.com" not in token
    assert token.startswith("v1.n1.")
    assert unseal_beneficiary(token, payment_id=payment_id) == BLOCK
    with pytest.raises(CryptoError):
        unseal_beneficiary(token, payment_id=uuid.uuid4())
    # The network rotates: a new key seals, the old one still opens what it sealed.
    settings.FINTECH_PAYMENT_NETWORK_KEYS = [entry("n2", 8), entry("n1", 7)]
    assert unseal_beneficiary(token, payment_id=payment_id) == BLOCK
    assert seal_beneficiary(BLOCK, payment_id=payment_id).startswith("v1.n2.")
    settings.FINTECH_PAYMENT_NETWORK_KEYS = [entry("n3", 9)]
    with pytest.raises(CryptoError):
        unseal_beneficiary(token, payment_id=payment_id)


def test_a_malformed_shared_key_is_named_by_its_setting(settings):
    settings.FINTECH_PAYMENT_NETWORK_KEYS = ["n1:short"]
    with pytest.raises(keyring.KeyRingError, match="FINTECH_PAYMENT_NETWORK_KEYS"):
        seal_beneficiary(BLOCK, payment_id=uuid.uuid4())


def test_production_wants_its_own_key_shared_with_the_network():
    check = keyring.shared_key_ring_problems
    encryption = [entry("k1", 1)]
    assert check([], setting="X", private_keys=encryption) == [
        "X must hold the keys shared with the other party (kid:base64 of 32 bytes)"
    ]
    assert check([entry("n1", 1)], setting="X", private_keys=encryption) == [
        "X must not hold one of the FINTECH_ENCRYPTION_KEYS"
    ]
    assert check([entry("n1", 2)], setting="X", private_keys=encryption) == []
    assert "X" in check(["n1:bad"], setting="X", private_keys=encryption)[0]


def item(**changes):
    fields = {
        "date": "2026-11-30",
        "end_to_end_id": "E99999999202611301200abcdefghijk",
        "payment_id": str(uuid.uuid4()),
        "direction": "outbound",
        "status": "settled",
        "amount": 1500,
        "currency": "BRL",
        "network_reference": "NET-1",
    }
    return SettlementItem(**{**fields, **changes})


def test_a_settlement_file_reads_back_what_was_written(tmp_path):
    items = [
        item(),
        item(status="returned", return_reason="AC04 closed account number"),
        item(direction="inbound", status="credited", payment_id="", end_to_end_id="E88888888202611301200abcdefghijk"),
    ]
    path = tmp_path / "day" / "settlement.csv"
    write_settlement_file(path, items)
    assert list(read_settlement_file(path)) == items
    assert path.read_text().splitlines()[0] == (
        "date,end_to_end_id,payment_id,direction,status,amount,currency,network_reference,return_reason"
    )


def test_each_bad_row_is_named_by_its_line_and_the_others_still_read(tmp_path):
    path = tmp_path / "settlement.csv"
    write_settlement_file(path, [item()])
    with open(path, "a") as handle:
        handle.write("2026-13-01,E1,not-a-uuid,outbound,lost,-5,brl,NET,\n")
        handle.write("2026-11-30,E99999999202611301200abcdefghijk,,inbound,settled,10,BRL,NET,\n")
    good, first, second = read_settlement_file(path)
    assert isinstance(good, SettlementItem)
    assert isinstance(first, SettlementFileError)
    assert str(first).startswith("line 3: ")
    for problem in ("date", "end_to_end_id", "status", "payment_id", "amount", "currency"):
        assert problem in str(first)
    assert isinstance(second, SettlementFileError)
    assert "status is not one of credited, returned" in str(second)


def test_a_file_without_the_header_is_refused(tmp_path):
    path = tmp_path / "settlement.csv"
    path.write_text("date,amount\n2026-11-30,10\n")
    with pytest.raises(SettlementFileError, match="header lacks"):
        list(read_settlement_file(path))
