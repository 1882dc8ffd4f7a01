"""Query parameters read by the kernel's input serializers: a refusal is a 400 naming the parameter."""

from datetime import UTC, datetime

import pytest
from django.http import QueryDict
from rest_framework import serializers

from fintech.api.serializers import MomentField, PeriodQuery, QueryInput


def moment(raw: str, *, end: bool) -> datetime:
    return MomentField(end=end).to_internal_value(raw)


def test_a_date_means_its_whole_day():
    assert moment("2026-11-30", end=False) == datetime(2026, 11, 30, tzinfo=UTC)
    assert moment("2026-11-30", end=True) == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_date_time_is_taken_as_it_is_and_a_naive_one_as_utc():
    assert moment("2026-11-30T10:00:00-03:00", end=True) == datetime(2026, 11, 30, 13, tzinfo=UTC)
    assert moment("2026-11-30T10:00:00", end=True) == datetime(2026, 11, 30, 10, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-45", "2026-11-30T25:00:00Z"])
def test_anything_else_is_refused_naming_the_parameter(raw):
    query = PeriodQuery(data=QueryDict(f"from={raw}"))
    assert not query.is_valid()
    assert query.errors["from"] == ["Invalid date or date-time."]


def test_a_period_must_not_end_before_it_starts():
    query = PeriodQuery(data=QueryDict("from=2026-12-01&to=2026-11-30"))
    assert not query.is_valid()
    assert query.errors["from"] == ["Must be before to."]
    empty = PeriodQuery(data=QueryDict(""))
    assert empty.is_valid()
    assert empty.validated_data == {}


def test_a_period_is_validated_under_the_names_its_query_gives_it():
    class Raised(PeriodQuery):
        period_names = ("raised_from", "raised_to")

    query = Raised(data=QueryDict("from=2026-11-30&to=2026-11-30"))
    assert query.is_valid(), query.errors
    assert query.validated_data == {
        "raised_from": datetime(2026, 11, 30, tzinfo=UTC),
        "raised_to": datetime(2026, 12, 1, tzinfo=UTC),
    }


def test_an_empty_parameter_counts_as_not_sent_and_an_undeclared_one_is_left_alone():
    class ByAccount(QueryInput):
        account_id = serializers.UUIDField(required=False)

    query = ByAccount(data=QueryDict("account_id=&cursor=abc"))
    assert query.is_valid(), query.errors
    assert query.validated_data == {}
    refused = ByAccount(data=QueryDict("account_id=nope"))
    assert not refused.is_valid()
    assert "account_id" in refused.errors
