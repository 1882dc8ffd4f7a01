from fintech.backoff import backoff_seconds


def test_the_wait_doubles_with_each_attempt_within_its_jitter_and_stops_at_the_cap():
    for attempts, expected in ((1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (20, 60.0)):
        waits = [backoff_seconds(attempts, base=2, cap=60, jitter=0.2) for _ in range(200)]
        assert all(expected * 0.8 <= wait <= expected * 1.2 for wait in waits), (attempts, min(waits), max(waits))
        assert len(set(waits)) > 1, "retries of a burst must not come back in step"


def test_no_jitter_is_exactly_the_doubling():
    assert [backoff_seconds(n, base=1.5, cap=100, jitter=0) for n in (0, 1, 2, 3)] == [1.5, 1.5, 3.0, 6.0]
