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
# Each test run gets its own PostgreSQL test database, so two runs on one machine never collide.
os.environ.setdefault("DATABASE_TEST_NAME", f"test_fintech_{os.getpid()}")
os.environ.setdefault(
    "SQLITE_TEST_PATH",
    os.path.join(os.environ.get("TMPDIR", "/tmp"), f"fintech-test-{os.getpid()}.sqlite3"),  # noqa: S108
)
