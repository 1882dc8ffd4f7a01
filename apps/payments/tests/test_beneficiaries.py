"""The beneficiary's rules: an account at another bank or a PIX key, each field checked by its
own rule, a refusal that names the field and never the value."""

import pytest

from apps.payments.beneficiaries import beneficiary_from, pix_key_parse
from fintech.errors import ValidationFailed

ACCOUNT = {
    "name": " Maria Oliveira ",
    "document": "11.222.333/0001-81",
    "bank_code": "60701190",
    "branch": "0001",
    "account_number": "123456-x",
}


def refusal(raw) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as refused:
        beneficiary_from(raw)
    assert refused.value.code == "invalid_beneficiary"
    return refused.value.errors


def test_an_account_beneficiary_is_normalized():
    payee = beneficiary_from(ACCOUNT)
    assert (payee.kind, payee.name, payee.document_type, payee.document) == (
        "account",
        "Maria Oliveira",
        "cnpj",
        "11222333000181",
    )
    assert (payee.bank_code, payee.branch, payee.account_number) == ("60701190", "0001", "123456-X")


def test_every_bad_field_is_named_at_once():
    errors = refusal({**ACCOUNT, "document": "11.222.333/0001-82", "bank_code": "6070119", "branch": "00001"})
    assert set(errors) == {"beneficiary.document", "beneficiary.bank_code", "beneficiary.branch"}
    assert "0001-82" not in str(errors)


def test_missing_and_unknown_fields_are_named():
    errors = refusal({"name": "Maria", "swift": "X"})
    assert {"beneficiary.document", "beneficiary.bank_code", "beneficiary.branch", "beneficiary.account_number"} <= set(
        errors
    )
    assert errors["beneficiary.swift"] == ["This field is not accepted."]


def test_a_name_too_long_or_with_control_characters_is_refused():
    assert "beneficiary.name" in refusal({**ACCOUNT, "name": "x" * 141})
    assert "beneficiary.name" in refusal({**ACCOUNT, "name": "Maria\nOliveira"})


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("52998224725", ("cpf", "52998224725")),
        ("529.982.247-25", ("cpf", "52998224725")),
        ("11222333000181", ("cnpj", "11222333000181")),
        (" Ana.Souza@Example.COM", ("email", "ana.souza@example.com")),
        ("+5511987654321", ("phone", "+5511987654321")),
        ("+55 (11) 98765-4321", ("phone", "+5511987654321")),
        ("3f2504e0-4f89-41d3-9a0c-0305e82c3301", ("evp", "3f2504e0-4f89-41d3-9a0c-0305e82c3301")),
        ("3F2504E0-4F89-41D3-9A0C-0305E82C3301", ("evp", "3f2504e0-4f89-41d3-9a0c-0305e82c3301")),
    ],
)
def test_a_pix_key_is_told_apart_by_its_shape_and_normalized(key, expected):
    assert pix_key_parse(key.strip()) == expected


@pytest.mark.parametrize(
    "key",
    [
        "52998224724",  # a CPF whose check digits fail
        "11222333000182",  # a CNPJ whose check digits fail
        "5521912345678",  # a phone without its +: not a document either
        "+55",  # too short for E.164
        "+0123456789",  # E.164 does not start with 0
        "ana@",  # not an address
        f"{'a' * 70}@example.com",  # longer than the directory's 77 characters
        "3f2504e0-4f89-41d3-9a0c-0305e82c330",  # one character short of a UUID
        "chave-aleatoria",
    ],
)
def test_a_bad_pix_key_is_refused_without_repeating_it(key):
    errors = refusal({"pix_key": key})
    assert list(errors) == ["beneficiary.pix_key"]
    assert key not in str(errors)


def test_a_pix_key_and_an_account_together_are_refused():
    assert "beneficiary" in refusal({"pix_key": "52998224725", "name": "Maria"})


def test_the_reference_names_the_destination_not_the_spelling():
    spelled_apart = beneficiary_from({**ACCOUNT, "name": "M. Oliveira", "account_number": "123456-X"})
    assert beneficiary_from(ACCOUNT).reference() == spelled_apart.reference()
    assert (
        beneficiary_from({"pix_key": "529.982.247-25"}).reference()
        == beneficiary_from({"pix_key": "52998224725"}).reference()
    )
    assert beneficiary_from(ACCOUNT).reference() != beneficiary_from({**ACCOUNT, "branch": "2"}).reference()
