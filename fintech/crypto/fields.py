"""Model fields whose values are AES-GCM tokens at rest and plain Python values in memory.

The column is `text` holding a token (cipher.py), bound to `<app>.<model>.<field>` so a value
cannot be moved to another column. Reading decrypts (`from_db_value`), writing encrypts
(`get_prep_value`), under the active key of FINTECH_ENCRYPTION_KEYS.

Equal plaintexts have different tokens, so the database cannot compare them: every lookup but
`isnull` is refused. Find rows through a blind index column (blind_index.py) instead.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeVar

from django import forms
from django.core.exceptions import FieldError, ValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Combinable, Expression
from django.db.models.lookups import IsNull, Lookup

from fintech.crypto.cipher import decrypt, encrypt

_ST = TypeVar("_ST")
_GT = TypeVar("_GT")

_ALLOWED_LOOKUPS = frozenset({"isnull"})


class RefusedLookup(Lookup[Any]):
    """What every lookup but `isnull` on an encrypted field resolves to: building it fails."""

    lookup_name = "refused"

    def __init__(self, lhs: Any, rhs: Any) -> None:
        purpose = getattr(getattr(lhs, "output_field", None), "purpose", "this column")
        raise FieldError(f"{purpose} is encrypted: only `isnull` lookups work on it; find rows through its blind index")


# Generic like django-stubs' own fields (set type, get type), so models see `str | None` and
# `date | None`; subscripting at runtime works through django_stubs_ext (config/settings.py).
class EncryptedField(models.Field[_ST, _GT]):
    """Shared behaviour; subclasses say how their Python value becomes the encrypted text."""

    def get_internal_type(self) -> str:
        return "TextField"  # the column holds the token

    def __init__(self, *args: Any, purpose: str | None = None, **kwargs: Any) -> None:
        # Set only to keep the binding of existing tokens when a model or field is renamed.
        self._purpose = purpose
        super().__init__(*args, **kwargs)

    @property
    def purpose(self) -> str:
        """What the tokens are bound to: `<app_label>.<model_name>.<field_name>`."""
        return self._purpose or f"{self.model._meta.label_lower}.{self.name}"

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self._purpose:
            kwargs["purpose"] = self._purpose
        return name, path, args, kwargs

    # --- conversions that subclasses define
    def to_plaintext(self, value: Any) -> str:
        raise NotImplementedError

    def from_plaintext(self, text: str) -> Any:
        raise NotImplementedError

    # --- the database boundary
    def from_db_value(
        self, value: str | None, expression: Expression | None, connection: BaseDatabaseWrapper | None
    ) -> Any:
        if value is None:
            return None
        return self.from_plaintext(decrypt(value, purpose=self.purpose))

    def get_prep_value(self, value: Any) -> Any:
        python = self.to_python(value)
        if python is None:
            return None
        return encrypt(self.to_plaintext(python), purpose=self.purpose)

    def value_to_string(self, obj: models.Model) -> str:
        value = self.value_from_object(obj)
        return "" if value is None else self.to_plaintext(value)

    def get_lookup(self, lookup_name: str) -> Any:
        # A class rather than a raise here: django-stubs' mypy plugin calls get_lookup too.
        return IsNull if lookup_name in _ALLOWED_LOOKUPS else RefusedLookup

    def get_transform(self, lookup_name: str) -> Any:
        return None


class EncryptedTextField(EncryptedField[_ST, _GT]):
    """A string, encrypted at rest."""

    description = "Text encrypted with AES-256-GCM"
    _pyi_private_set_type: str | Combinable
    _pyi_private_get_type: str

    def to_python(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return str(value)

    def to_plaintext(self, value: str) -> str:
        return value

    def from_plaintext(self, text: str) -> str:
        return text


class EncryptedDateField(EncryptedField[_ST, _GT]):
    """A calendar date (ISO 8601 inside the token), encrypted at rest."""

    description = "Date encrypted with AES-256-GCM"
    _pyi_private_set_type: date | str | Combinable
    _pyi_private_get_type: date

    def to_python(self, value: Any) -> date | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ValidationError("Enter a valid date (YYYY-MM-DD).", code="invalid") from None

    def to_plaintext(self, value: date) -> str:
        return value.isoformat()

    def from_plaintext(self, text: str) -> date:
        return date.fromisoformat(text)

    def formfield(
        self,
        form_class: type[forms.Field] | None = None,
        choices_form_class: type[forms.ChoiceField] | None = None,
        **kwargs: Any,
    ) -> forms.Field | None:
        return super().formfield(
            form_class=form_class or forms.DateField, choices_form_class=choices_form_class, **kwargs
        )
