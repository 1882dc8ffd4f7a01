"""Who a payment goes to: an account at another bank, or a PIX key. Checked whole before anything
is written; a refusal names the field and never repeats the value submitted.

- an account: `name`, `document` (CPF or CNPJ, check digits), `bank_code` (the bank's 8-digit
  ISPB), `branch` (1 to 4 digits) and `account_number` (digits, an optional check digit after a
  dash);
- a PIX key: a CPF, a CNPJ, an e-mail, a phone in E.164 (`+5511987654321`) or a random key (a
  UUID), told apart by their shape and each checked by its own rule.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from fintech.contacts import InvalidPhone, mask_email, mask_phone, normalize_email, normalize_phone
from fintech.crypto.blind_index import blind_index
from fintech.documents import InvalidDocument, mask_document, normalize_document
from fintech.errors import ValidationFailed
from fintech.payment_network import is_ispb

ACCOUNT_FIELDS = ("name", "document", "bank_code", "branch", "account_number")
ACCOUNT = "account"
PIX_KEY = "pix_key"
NAME_MAX_LENGTH = 140
PIX_EMAIL_MAX_LENGTH = 77  # the PIX directory's limit for an e-mail key
_BRANCH = re.compile(r"^[0-9]{1,4}$")
_ACCOUNT_NUMBER = re.compile(r"^[0-9]{1,19}(-[0-9Xx])?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REFERENCE_PURPOSE = "payments.beneficiary"


@dataclass(frozen=True, slots=True)
class Beneficiary:
    kind: str  # ACCOUNT or PIX_KEY
    name: str = ""
    document_type: str = ""  # cpf, cnpj
    document: str = ""  # bare digits
    bank_code: str = ""
    branch: str = ""
    account_number: str = ""
    pix_key_type: str = ""  # cpf, cnpj, email, phone, evp
    pix_key: str = ""  # normalized

    def reference(self) -> str:
        """The blind index that names this beneficiary in events: the same account or key always
        gives the same reference, and the reference gives nothing back without the secret."""
        if self.kind == ACCOUNT:
            identity = f"account:{self.bank_code}:{self.branch}:{self.account_number.replace('-', '')}"
        else:
            identity = f"pix:{self.pix_key_type}:{self.pix_key}"
        return blind_index(identity, purpose=_REFERENCE_PURPOSE)

    def sealed_block(self) -> dict[str, str]:
        """What the network needs to pay, to be sealed for it (fintech.payment_network)."""
        if self.kind == ACCOUNT:
            return {
                "kind": ACCOUNT,
                "name": self.name,
                "document_type": self.document_type,
                "document": self.document,
                "bank_code": self.bank_code,
                "branch": self.branch,
                "account_number": self.account_number,
            }
        return {"kind": PIX_KEY, "pix_key_type": self.pix_key_type, "pix_key": self.pix_key}

    def masked(self) -> dict[str, str]:
        """What the API shows: enough for the payer to recognise the beneficiary."""
        if self.kind == ACCOUNT:
            return {
                "kind": ACCOUNT,
                "name": self.name,
                "document": mask_document(self.document_type, self.document),
                "bank_code": self.bank_code,
                "branch": self.branch,
                "account_number": mask_tail(self.account_number),
            }
        return {"kind": PIX_KEY, "pix_key_type": self.pix_key_type, "pix_key": mask_pix_key(self)}


def mask_tail(value: str, visible: int = 4) -> str:
    return "*" * max(len(value) - visible, 0) + value[-visible:]


def mask_pix_key(beneficiary: Beneficiary) -> str:
    key, kind = beneficiary.pix_key, beneficiary.pix_key_type
    if kind in ("cpf", "cnpj"):
        return mask_document(kind, key)
    if kind == "email":
        return mask_email(key)
    if kind == "phone":
        return mask_phone(key)
    return f"{key[:8]}-****-****-****-********{key[-4:]}"  # a random key: its ends identify it


def beneficiary_from(raw: object) -> Beneficiary:
    """The beneficiary of a payment request, checked whole; ValidationFailed names each bad field
    (`beneficiary.<field>`)."""
    if not isinstance(raw, Mapping):
        _refuse({"beneficiary": ["An account (name, document, bank_code, branch, account_number) or a pix_key."]})
    fields = {str(key): value for key, value in raw.items()}
    if PIX_KEY in fields:
        if len(fields) > 1:
            _refuse({"beneficiary": ["Either a pix_key or an account's fields, not both."]})
        return _pix_beneficiary(fields[PIX_KEY])
    return _account_beneficiary(fields)


def _refuse(errors: dict[str, list[str]]) -> NoReturn:
    raise ValidationFailed("The beneficiary is not valid.", code="invalid_beneficiary", errors=errors)


def _text(fields: Mapping[str, object], name: str, errors: dict[str, list[str]]) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        errors[f"beneficiary.{name}"] = ["This field is required."]
        return ""
    return value.strip()


def _account_beneficiary(fields: Mapping[str, object]) -> Beneficiary:
    errors: dict[str, list[str]] = {
        f"beneficiary.{name}": ["This field is not accepted."] for name in sorted(set(fields) - set(ACCOUNT_FIELDS))
    }
    name, document, bank_code, branch, account_number = (_text(fields, field, errors) for field in ACCOUNT_FIELDS)
    if name and (len(name) > NAME_MAX_LENGTH or not name.isprintable()):
        errors["beneficiary.name"] = [f"At most {NAME_MAX_LENGTH} printable characters."]
    document_type = digits = ""
    if document:
        try:
            document_type, digits = normalize_document(document)
        except InvalidDocument as error:
            errors["beneficiary.document"] = [str(error)]
    if bank_code and not is_ispb(bank_code):
        errors["beneficiary.bank_code"] = ["The bank's ISPB: 8 digits."]
    if branch and not (_BRANCH.match(branch) and branch.isascii()):
        errors["beneficiary.branch"] = ["1 to 4 digits."]
    if account_number and not (_ACCOUNT_NUMBER.match(account_number) and account_number.isascii()):
        errors["beneficiary.account_number"] = ["Digits, and a check digit after a dash if it has one."]
    if errors:
        _refuse(errors)
    return Beneficiary(
        kind=ACCOUNT,
        name=name,
        document_type=str(document_type),
        document=digits,
        bank_code=bank_code,
        branch=branch,
        account_number=account_number.upper(),
    )


_PIX_KEY_SHAPES = "a CPF, a CNPJ, an e-mail, a phone in E.164 (+5511987654321) or a random key (a UUID)"


def _pix_beneficiary(raw: object) -> Beneficiary:
    if not isinstance(raw, str) or not raw.strip():
        _refuse({"beneficiary.pix_key": ["This field is required."]})
    key = str(raw).strip()
    kind, normalized = pix_key_parse(key)
    return Beneficiary(kind=PIX_KEY, pix_key_type=kind, pix_key=normalized)


def pix_key_parse(key: str) -> tuple[str, str]:
    """(type, normalized key), told apart by shape: a UUID is a random key, an `@` an e-mail, a
    leading `+` a phone, digits a CPF or CNPJ. Raises ValidationFailed."""
    if _UUID.match(key):
        return "evp", str(uuid.UUID(key))
    if "@" in key:
        email = normalize_email(key)
        try:
            validate_email(email)
        except ValidationError:
            _refuse({"beneficiary.pix_key": ["This e-mail key is not a valid address."]})
        if len(email) > PIX_EMAIL_MAX_LENGTH:
            _refuse({"beneficiary.pix_key": [f"An e-mail key has at most {PIX_EMAIL_MAX_LENGTH} characters."]})
        return "email", email
    if key.startswith("+"):
        try:
            return "phone", normalize_phone(key)
        except InvalidPhone as error:
            _refuse({"beneficiary.pix_key": [str(error)]})
    try:
        document_type, digits = normalize_document(key)
    except InvalidDocument:
        _refuse({"beneficiary.pix_key": [f"A PIX key is {_PIX_KEY_SHAPES}."]})
    return str(document_type), digits
