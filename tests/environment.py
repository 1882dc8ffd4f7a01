"""Loaded by pytest (`-p tests.environment`) before Django starts: the test-only settings."""

import os

# The probe context that measures the event spine's guarantees.
os.environ.setdefault("FINTECH_TEST_APPS", "tests.spine")
# Retries come quickly under test; production waits seconds to minutes.
os.environ.setdefault("FINTECH_HANDLER_RETRY_BASE_SECONDS", "0")
os.environ.setdefault("FINTECH_HANDLER_MAX_ATTEMPTS", "3")
# The dev issuer's key for tests lives outside the working tree's var/.
os.environ.setdefault(
    "FINTECH_DEV_ISSUER_KEY_PATH",
    os.path.join(os.environ.get("TMPDIR", "/tmp"), "fintech-test-dev-issuer-key.pem"),
)
# So do the dev encryption key and blind-index secret (used when no key is configured).
for _name, _file in (
    ("FINTECH_DEV_ENCRYPTION_KEY_PATH", "fintech-test-dev-encryption-key"),
    ("FINTECH_DEV_BLIND_INDEX_KEY_PATH", "fintech-test-dev-blind-index-key"),
):
    os.environ.setdefault(_name, os.path.join(os.environ.get("TMPDIR", "/tmp"), _file))
# Each test run counts rate limits under its own Redis keys (cleared between tests by conftest).
os.environ.setdefault("FINTECH_RATE_LIMIT_KEY_PREFIX", f"fintech-test-{os.getpid()}:ratelimit:")
# Each test run gets its own PostgreSQL test database, so two runs on one machine never collide.
os.environ.setdefault("DATABASE_TEST_NAME", f"test_fintech_{os.getpid()}")
os.environ.setdefault(
    "SQLITE_TEST_PATH",
    os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fintech-test-{os.getpid()}.sqlite3"),
)
