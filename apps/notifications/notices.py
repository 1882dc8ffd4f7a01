"""The words of a notification: its template per notice and language, amounts as money in the
reader's locale (R$ 1.234,56 in pt-BR) and times in the bank's time zone.

Templates are Django templates, plain text, under `templates/notifications/<language>/<notice>.txt`:
the first line is the subject (an e-mail's subject, a push notification's title), the rest the
body. They see first names, amounts, the last digits of an account number and failure codes;
never a document number, an address or a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_currency
from django.conf import settings
from django.template import Context, Engine

from fintech.money import in_major_units

LANGUAGES = ("pt-BR", "en")
DEFAULT_LANGUAGE = "pt-BR"
_LOCALES = {"pt-BR": "pt_BR", "en": "en_US"}

# Plain text, not HTML: nothing is escaped (a push title is JSON-encoded, an e-mail is text/plain).
_ENGINE = Engine(dirs=[str(Path(__file__).resolve().parent / "templates")], autoescape=False)


def language_of(preferred: str | None) -> str:
    return preferred if preferred in LANGUAGES else DEFAULT_LANGUAGE


def format_money(minor_units: int, currency: str, language: str) -> str:
    """`R$ 1.234,56` (pt-BR) or `R$1,234.56` (en): minor units as the reader writes money."""
    amount = in_major_units(minor_units, currency)
    # Babel separates the symbol with a no-break space; a plain one reads the same everywhere.
    return format_currency(amount, currency, locale=_LOCALES[language_of(language)]).replace("\xa0", " ")


def format_moment(moment: datetime, language: str) -> str:
    zone = ZoneInfo(settings.FINTECH_NOTIFICATIONS_TIME_ZONE)
    return format_datetime(moment, format="short", tzinfo=zone, locale=_LOCALES[language_of(language)])


def account_ending(number: str | None) -> str:
    """The last four digits of an account number: enough to recognise it, not to use it."""
    digits = "".join(ch for ch in (number or "") if ch.isdigit())
    return digits[-4:]


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


def render(notice: str, language: str, facts: dict[str, Any]) -> Rendered:
    """The subject and body of `notice` in `language`, from the event's facts (amount and
    currency in minor units, times as datetimes), with money and times formatted for the reader."""
    language = language_of(language)
    context = dict(facts)
    if "amount" in facts and "currency" in facts:
        context["money"] = format_money(int(facts["amount"]), str(facts["currency"]), language)
    if isinstance(facts.get("moment"), datetime):
        context["when"] = format_moment(facts["moment"], language)
    text = _ENGINE.get_template(f"notifications/{language}/{notice}.txt").render(Context(context)).strip()
    subject, _, body = text.partition("\n")
    return Rendered(subject=subject.strip()[:200], body=body.strip())
