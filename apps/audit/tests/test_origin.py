import pytest

from apps.audit.origin import client_ip

PEER = "203.0.113.9"


@pytest.mark.parametrize(
    ("trusted", "forwarded", "expected"),
    [
        (0, None, PEER),
        (0, "198.51.100.7", PEER),  # no proxy is trusted: whatever the client wrote is ignored
        (1, "198.51.100.7", "198.51.100.7"),
        (1, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the client prepended a lie: the right end counts
        (2, "6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (2, "198.51.100.7", PEER),  # fewer hops than proxies: it did not come through them
        (1, "not-an-address", PEER),
        (1, "2001:DB8::0:1", "2001:db8::1"),
    ],
)
def test_the_client_address_trusts_only_the_configured_proxies(trusted, forwarded, expected):
    meta = {"REMOTE_ADDR": PEER}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    assert client_ip(meta, trusted_proxies=trusted) == expected
