import pytest

from fintech.documents import DocumentType, InvalidDocument, mask_document, normalize_document


@pytest.mark.parametrize(
    ("raw", "kind", "digits"),
    [
        ("529.982.247-25", DocumentType.CPF, "52998224725"),
        ("11144477735", DocumentType.CPF, "11144477735"),
        ("11.222.333/0001-81", DocumentType.CNPJ, "11222333000181"),
        ("11444777000161", DocumentType.CNPJ, "11444777000161"),
    ],
)
def test_valid_documents_normalize_to_their_digits(raw, kind, digits):
    assert normalize_document(raw) == (kind, digits)


@pytest.mark.parametrize(
    "raw",
    [
        "529.982.247-24",  # wrong second check digit
        "529.982.247-15",  # wrong first check digit
        "11.222.333/0001-82",
        "111.111.111-11",  # repeated digits pass the arithmetic but are not issued
        "00000000000000",
        "1234567890",  # ten digits
        "52998224725a",
        "\uff15\uff12\uff19\uff19\uff18\uff12\uff12\uff14\uff17\uff12\uff15",  # full-width: digits to Python only
        "",
    ],
)
def test_invalid_documents_are_refused(raw):
    with pytest.raises(InvalidDocument):
        normalize_document(raw)


def test_masks_hide_the_identifying_digits():
    assert mask_document("cpf", "52998224725") == "***.982.247-**"
    assert mask_document("cnpj", "11222333000181") == "**.222.333/****-**"
