"""The words of notifications: money in the reader's locale, every template in both languages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from apps.notifications.notices import LANGUAGES, format_money, render

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "notifications"
NOTICES = sorted(path.stem for path in (TEMPLATES / "pt-BR").glob("*.txt"))


@pytest.mark.parametrize(
    ("minor", "currency", "language", "written"),
    [
        (123456, "BRL", "pt-BR", "R$ 1.234,56"),
        (123456, "BRL", "en", "R$1,234.56"),
        (5, "BRL", "pt-BR", "R$ 0,05"),
        (100_000_000, "USD", "en", "$1,000,000.00"),
        (1500, "JPY", "en", "¥1,500"),
        (123456, "BRL", "xx", "R$ 1.234,56"),  # an unknown language reads as the default, pt-BR
    ],
)
def test_money_is_written_as_the_reader_writes_it(minor, currency, language, written):
    assert format_money(minor, currency, language) == written


def test_every_notice_exists_in_every_language():
    for language in LANGUAGES:
        assert sorted(path.stem for path in (TEMPLATES / language).glob("*.txt")) == NOTICES


FACTS = {
    "first_name": "Ana",
    "amount": 123456,
    "currency": "BRL",
    "moment": datetime(2026, 3, 1, 15, 30, tzinfo=UTC),
    "account_ending": "4321",
    "failure_code": "insufficient_funds",
    "return_reason": "conta inexistente",
    "alert_id": "a1",
    "subject_type": "transfer",
    "subject_id": "t1",
    "account_id": "acc1",
    "decision": "review",
    "score": 80,
    "rules": [{"rule": "velocity", "version": 2, "score": 80, "reason": "5 transfers in 1 minute"}],
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("notice", NOTICES)
def test_each_notice_renders_a_subject_and_a_body(notice, language):
    text = render(notice, language, FACTS)
    assert text.subject
    assert text.body
    assert "{" not in text.subject + text.body
    if notice not in ("kyc_verified", "kyc_rejected", "account_blocked"):
        assert ("R$ 1.234,56" if language == "pt-BR" else "R$1,234.56") in text.subject + text.body


def test_times_are_in_the_banks_time_zone_and_failures_in_words():
    text = render("transfer_failed", "pt-BR", FACTS)
    assert "saldo insuficiente" in text.body
    sent = render("transfer_sent", "pt-BR", FACTS)
    assert "01/03/2026 12:30" in sent.body  # 15:30 UTC is 12:30 in São Paulo
    assert "Olá, Ana!" in sent.body


@pytest.mark.parametrize(
    ("failure_code", "pt_br", "en"),
    [
        ("fraud_rejected", "recusado pela análise de segurança", "refused by our security review"),
        ("review_expired", "a análise de segurança não terminou a tempo", "our security review did not finish in time"),
        ("account_blocked", "conta bloqueada", "account blocked"),
        ("account_closed", "conta encerrada", "account closed"),
    ],
)
def test_a_failed_payment_says_why_in_words(failure_code, pt_br, en):
    facts = {**FACTS, "failure_code": failure_code}
    assert f"({pt_br})" in render("payment_failed", "pt-BR", facts).body
    assert f"({en})" in render("payment_failed", "en", facts).body


def test_a_returned_payment_gives_the_networks_reason_and_a_credit_names_the_other_bank():
    assert "(conta inexistente)" in render("payment_returned", "pt-BR", FACTS).body
    credit = render("credit_received", "en", FACTS)
    assert credit.subject == "You received R$1,234.56 from another bank"
    assert "account ending 4321" in credit.body
