from datetime import UTC, datetime

import pytest

from fintech.api.query import moment_param, period_params, uuid_param
from fintech.errors import ValidationFailed


def test_a_date_means_its_whole_day():
    assert moment_param("2026-11-30", "from", end=False) == datetime(2026, 11, 30, tzinfo=UTC)
    assert moment_param("2026-11-30", "to", end=True) == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_date_time_is_taken_as_it_is_and_a_naive_one_as_utc():
    assert moment_param("2026-11-30T10:00:00-03:00", "to", end=True) == datetime(2026, 11, 30, 13, tzinfo=UTC)
    assert moment_param("2026-11-30T10:00:00", "to", end=True) == datetime(2026, 11, 30, 10, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-45", "2026-11-30T25:00:00Z"])
def test_anything_else_is_refused_naming_the_parameter(raw):
    with pytest.raises(ValidationFailed) as refusal:
        moment_param(raw, "from", end=False)
    assert "from" in refusal.value.errors


def test_a_period_must_not_end_before_it_starts():
    with pytest.raises(ValidationFailed):
        period_params("2026-12-01", "2026-11-30")
    assert period_params(None, None) == (None, None)


def test_a_uuid_parameter():
    assert uuid_param("", "account_id") is None
    with pytest.raises(ValidationFailed):
        uuid_param("nope", "account_id")
