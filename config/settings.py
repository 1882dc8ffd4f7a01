"""One settings module for every environment: every knob comes from the environment.

The embedded default (no variable set) is a complete bank on SQLite with in-process event
dispatch and a log sink for the relay, so `make run` needs no server. Setting
`DATABASE_URL`, `REDIS_URL`, `KAFKA_BOOTSTRAP_SERVERS`, ... switches each piece to the real
service. `DJANGO_ENV=production` refuses to start with insecure values.

Over 400 lines because every knob of every part of the bank is read here, and only here: one
place says what the environment controls (the README's table lists each variable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets runtime code use the generic types the stubs declare (ModelAdmin[Customer], ...).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DJANGO_ENV = env_str("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"

# Runtime state of the embedded default (SQLite file, dev issuer key) lives here, outside git.
VAR_DIR = Path(env_str("FINTECH_VAR_DIR", str(BASE_DIR / "var")))

_INSECURE_SECRET = "insecure-development-secret-key-do-not-use-in-production-0123456789"
SECRET_KEY = env_str("SECRET_KEY", "" if PRODUCTION else _INSECURE_SECRET)
DEBUG = env_bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "fintech.api",
    "fintech.auth",
    "fintech.crypto",
    "fintech.contexts",
    "fintech.serving",
    "outbox",
    "apps.customers",
    "apps.accounts",
    "apps.ledger",
    "apps.transactions",
    "apps.payments",
    "apps.fraud",
    "apps.audit",
    "apps.notifications",
    "apps.analytics",
]
# Extra apps for the test suite only (a probe context that measures the event spine).
INSTALLED_APPS += env_list("FINTECH_TEST_APPS")

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "fintech.api.security.SecurityHeadersMiddleware",
    "fintech.api.errors.ApiProblemsMiddleware",
    "fintech.observability.middleware.RequestContextMiddleware",
    "fintech.api.security.RequestBodyLimitMiddleware",
    "fintech.api.throttling.RateLimitHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication and the request context: records who did what, once the response is known.
    "apps.audit.middleware.AuditMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


# --- Database -------------------------------------------------------------------------------
def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL")
    if url:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60)))
        if config["ENGINE"] == "django.db.backends.postgresql":
            config["CONN_HEALTH_CHECKS"] = True
            config.setdefault("OPTIONS", {})
            config["OPTIONS"].setdefault("connect_timeout", 5)
            if env_str("DATABASE_TEST_NAME"):
                config["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME")}
        return config
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("SQLITE_PATH", str(VAR_DIR / "bank.sqlite3")),
        "OPTIONS": {
            # IMMEDIATE takes the write lock when a transaction starts, so two writers queue
            # on the busy timeout instead of one failing with "database is locked" mid-way.
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        },
        "TEST": {"NAME": env_str("SQLITE_TEST_PATH", str(VAR_DIR / "test-bank.sqlite3"))},
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis ------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "sweep-outbox": {"task": "outbox.tasks.sweep_outbox", "schedule": 5.0},
    "flag-overdue-payments": {"task": "apps.payments.tasks.flag_overdue_payments", "schedule": 60.0},
    "purge-outbox": {"task": "outbox.tasks.purge_outbox", "schedule": 3600.0},
    "purge-idempotency-keys": {"task": "fintech.api.tasks.purge_idempotency_keys", "schedule": 3600.0},
    "deliver-notifications": {"task": "apps.notifications.tasks.deliver_notifications", "schedule": 2.0},
    "expire-fraud-reviews": {"task": "apps.fraud.tasks.expire_fraud_reviews", "schedule": 300.0},
}

# --- Event spine ----------------------------------------------------------------------------
# inline: handlers run right after commit in the writing process (embedded default).
# celery: commits enqueue a dispatch task; workers run the handlers.
# worker: nothing runs after commit; `manage.py dispatch_events` polls the outbox.
FINTECH_EVENT_DISPATCH = env_str("FINTECH_EVENT_DISPATCH", "inline")
# With inline dispatch, the reactions (notifications, analytics: handlers that are not steps of a
# choreography) run right after the commit in the process that committed (1, the default: a call
# returns with everything done), or are left to `manage.py dispatch_events`, which then takes them
# at once (0: what `make run` does, so that a request answers as soon as its own work committed).
FINTECH_REACTIONS_IN_PROCESS = env_bool("FINTECH_REACTIONS_IN_PROCESS", True)
FINTECH_HANDLER_MAX_ATTEMPTS = env_int("FINTECH_HANDLER_MAX_ATTEMPTS", 5)
FINTECH_HANDLER_RETRY_BASE_SECONDS = float(env_str("FINTECH_HANDLER_RETRY_BASE_SECONDS", "1.0"))
FINTECH_HANDLER_RETRY_MAX_SECONDS = float(env_str("FINTECH_HANDLER_RETRY_MAX_SECONDS", "300"))
# Events older than this that are still undispatched were left behind by a crash: the sweeper
# picks them up. Younger ones are still being handled by the process that wrote them.
FINTECH_SWEEP_GRACE_SECONDS = float(
    env_str("FINTECH_SWEEP_GRACE_SECONDS", "10" if env_bool("FINTECH_REACTIONS_IN_PROCESS", True) else "0")
)
# /readyz reports the dispatcher stalled (degraded) once an event has waited this long for a handler.
FINTECH_DISPATCH_STALL_SECONDS = float(env_str("FINTECH_DISPATCH_STALL_SECONDS", "60"))
KAFKA_BOOTSTRAP_SERVERS = env_str("KAFKA_BOOTSTRAP_SERVERS")
KAFKA_TOPIC_PARTITIONS = env_int("KAFKA_TOPIC_PARTITIONS", 3)
KAFKA_TOPIC_REPLICATION = env_int("KAFKA_TOPIC_REPLICATION", 1)
KAFKA_LINGER_MS = env_int("KAFKA_LINGER_MS", 5)
KAFKA_COMPRESSION = env_str("KAFKA_COMPRESSION", "lz4")
KAFKA_DELIVERY_TIMEOUT_MS = env_int("KAFKA_DELIVERY_TIMEOUT_MS", 30_000)
# Extra librdkafka settings (security.protocol, sasl.*, ...) as "key=value,key=value".
KAFKA_EXTRA_CONFIG = dict(item.split("=", 1) for item in env_list("KAFKA_EXTRA_CONFIG") if "=" in item)
KAFKA_CONSUMER_MAX_ATTEMPTS = env_int("KAFKA_CONSUMER_MAX_ATTEMPTS", 5)
KAFKA_CONSUMER_RETRY_BASE_SECONDS = float(env_str("KAFKA_CONSUMER_RETRY_BASE_SECONDS", "0.5"))
# Sent outbox rows are removed after this many days (the Kafka topics keep the history).
FINTECH_OUTBOX_RETENTION_DAYS = env_int("FINTECH_OUTBOX_RETENTION_DAYS", 7)
# Keep every shipped and dispatched event in the outbox (marked sent) until the purge, instead of
# deleting it at once: an audit of what was written (make chaos compares it with the topics).
FINTECH_OUTBOX_KEEP_SHIPPED = env_bool("FINTECH_OUTBOX_KEEP_SHIPPED", False)
FINTECH_INBOX_RETENTION_DAYS = env_int("FINTECH_INBOX_RETENTION_DAYS", 30)
FINTECH_RELAY_SINK = env_str("FINTECH_RELAY_SINK", "kafka" if KAFKA_BOOTSTRAP_SERVERS else "log")
FINTECH_RELAY_FILE = env_str("FINTECH_RELAY_FILE", str(VAR_DIR / "relayed-events.jsonl"))
FINTECH_RELAY_BATCH_SIZE = env_int("FINTECH_RELAY_BATCH_SIZE", 500)

# --- Stores ---------------------------------------------------------------------------------
CASSANDRA_HOSTS = env_list("CASSANDRA_HOSTS")

# --- Money ----------------------------------------------------------------------------------
FINTECH_DEFAULT_CURRENCY = env_str("FINTECH_DEFAULT_CURRENCY", "BRL")
FINTECH_SUPPORTED_CURRENCIES = env_list("FINTECH_SUPPORTED_CURRENCIES", "BRL,USD,EUR")
FINTECH_MAX_AMOUNT = env_int("FINTECH_MAX_AMOUNT", 100_000_000)  # minor units: 1,000,000.00

# --- Anti-fraud (apps/fraud) ----------------------------------------------------------------
# A transfer or payment held for review and not decided within this many hours is rejected by
# the periodic expiry (`manage.py expire_fraud_reviews`, the beat task) and its hold released.
FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS = env_int("FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS", 24)

# --- Payments to and from other banks (apps/payments, fintech/payment_network.py) ------------
# The bank's code at the central bank (8 digits): the payer of its payments, the creditor of credits.
FINTECH_BANK_ISPB = env_str("FINTECH_BANK_ISPB", "99999999")
# kafka: the payment network is outside; the relay ships payment.requested to it and the consumer
#   group `payments` reads its answers (payment.processed) and credits (payment.received).
# simulator-inline: a simulator of the network answers in this process (outbox/network_simulator/),
#   so the embedded default settles a payment with no server at all. Refused in production.
PAYMENT_NETWORK_MODES = ("kafka", "simulator-inline")
FINTECH_PAYMENT_NETWORK = env_str(
    "FINTECH_PAYMENT_NETWORK", "kafka" if KAFKA_BOOTSTRAP_SERVERS or PRODUCTION else "simulator-inline"
)
if FINTECH_PAYMENT_NETWORK not in PAYMENT_NETWORK_MODES:
    raise ImproperlyConfigured(f"FINTECH_PAYMENT_NETWORK must be one of {', '.join(PAYMENT_NETWORK_MODES)}")
# The keys shared with the network that seal a payment's beneficiary ("kid:base64-32-bytes,...", the
# first seals); outside production, unset, a `dev` key generated once in this file.
FINTECH_PAYMENT_NETWORK_KEYS = env_list("FINTECH_PAYMENT_NETWORK_KEYS")
FINTECH_DEV_PAYMENT_NETWORK_KEY_PATH = env_str(
    "FINTECH_DEV_PAYMENT_NETWORK_KEY_PATH", str(VAR_DIR / "dev-payment-network-key")
)
# A payment sent to the network and not answered within this long is flagged for operations.
FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS = env_int("FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS", 600)
# Where the in-process simulator writes the network's settlement file of each day ({date}: YYYY-MM-DD).
FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE = env_str(
    "FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE", str(VAR_DIR / "payment-network" / "settlement-{date}.csv")
)

# --- Identity -------------------------------------------------------------------------------
OIDC_ISSUER = env_str("OIDC_ISSUER")
OIDC_AUDIENCE = env_str("OIDC_AUDIENCE", "fintech-api")
OIDC_JWKS_URL = env_str("OIDC_JWKS_URL")
# The embedded default is its own issuer: tokens from `manage.py issue_token`.
FINTECH_DEV_ISSUER = env_str("FINTECH_DEV_ISSUER", "http://127.0.0.1:8000/dev-issuer")
FINTECH_DEV_ISSUER_KEY_PATH = env_str("FINTECH_DEV_ISSUER_KEY_PATH", str(VAR_DIR / "dev-issuer-key.pem"))
FINTECH_TOKEN_LEEWAY_SECONDS = env_int("FINTECH_TOKEN_LEEWAY_SECONDS", 30)
# Back office: the Django admin signs staff in through the same provider (mozilla-django-oidc, client
# fintech-backoffice; fintech/auth/admin_oidc.py maps realm roles to is_staff/is_superuser/groups), only
# when OIDC_ISSUER is set. ModelBackend stays for the first superuser's password (/admin/login/?local=1).
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ISSUER:
    AUTHENTICATION_BACKENDS.insert(0, "fintech.auth.admin_oidc.BackOfficeOIDCBackend")
    _OIDC_ENDPOINTS = f"{OIDC_ISSUER.rstrip('/')}/protocol/openid-connect"  # Keycloak's layout
    OIDC_OP_AUTHORIZATION_ENDPOINT = f"{_OIDC_ENDPOINTS}/auth"
    OIDC_OP_TOKEN_ENDPOINT = f"{_OIDC_ENDPOINTS}/token"
    OIDC_OP_USER_ENDPOINT = f"{_OIDC_ENDPOINTS}/userinfo"
    OIDC_OP_JWKS_ENDPOINT = OIDC_JWKS_URL or f"{_OIDC_ENDPOINTS}/certs"
    OIDC_OP_LOGOUT_ENDPOINT = f"{_OIDC_ENDPOINTS}/logout"
    OIDC_OP_LOGOUT_URL_METHOD = "fintech.auth.admin_oidc.provider_logout_url"
    OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "fintech-backoffice")
    OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
    OIDC_RP_SIGN_ALGO = "RS256"
    OIDC_RP_SCOPES = "openid email profile"
    OIDC_USE_PKCE = True
    OIDC_STORE_ID_TOKEN = True  # the id_token_hint of the provider logout
    OIDC_TIMEOUT = 10
    LOGIN_REDIRECT_URL = "/admin/"
    LOGIN_REDIRECT_URL_FAILURE = "/oidc/failed/"
    LOGOUT_REDIRECT_URL = "/admin/"
# --- Personal data at rest (fintech/crypto/keyring.py documents the formats and rotation) ---
# "kid:base64-32-bytes,..."; the first key encrypts, every key decrypts.
FINTECH_ENCRYPTION_KEYS = env_list("FINTECH_ENCRYPTION_KEYS")
# The HMAC secret of the blind indexes (lookups, uniqueness): separate, so rotating keys keeps them.
FINTECH_BLIND_INDEX_KEY = env_str("FINTECH_BLIND_INDEX_KEY")
# Outside production, unset keys come from these files, generated once (0600, outside git).
FINTECH_DEV_ENCRYPTION_KEY_PATH = env_str("FINTECH_DEV_ENCRYPTION_KEY_PATH", str(VAR_DIR / "dev-encryption-key"))
FINTECH_DEV_BLIND_INDEX_KEY_PATH = env_str("FINTECH_DEV_BLIND_INDEX_KEY_PATH", str(VAR_DIR / "dev-blind-index-key"))

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["fintech.auth.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["fintech.auth.permissions.HasRequiredScopes"],
    "DEFAULT_PARSER_CLASSES": ["fintech.api.parsers.BankJSONParser"],
    # OPTIONS is not an operation of the API: 405, not a description of the views.
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_RENDERER_CLASSES": ["fintech.api.renderers.BankJSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "fintech.api.pagination.BankCursorPagination",
    # After the rate limit, a write's body is read (400 if it is not a JSON object) before any view acts.
    "DEFAULT_THROTTLE_CLASSES": ["fintech.api.throttling.BankRateThrottle", "fintech.api.parsers.ReadsTheBody"],
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "fintech.api.errors.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fintech digital bank API",
    "DESCRIPTION": "Customers and KYC, accounts and their statements, transfers and deposits, the ledger's journal.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    },
    "SECURITY": [{"bearerAuth": []}],
    # Swagger UI from the bank's own static files, never a CDN (see fintech/api/security.py).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "EntrySideEnum": ["debit", "credit"],
        "CustomerOutputStatusEnum": "apps.customers.models.Customer.Status",
        "CustomerLanguageEnum": "apps.customers.models.Customer.Language",
        "PaymentStatusEnum": "apps.payments.models.Payment.Status",
        "BeneficiaryKindEnum": "apps.payments.models.Payment.BeneficiaryKind",
        "PaymentStepEnum": "apps.payments.models.PaymentStep.Step",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "fintech.api.schema.add_problem_responses",
    ],
}
FINTECH_IDEMPOTENCY_TTL_SECONDS = env_int("FINTECH_IDEMPOTENCY_TTL_SECONDS", 24 * 3600)
# A reservation left by a request that died mid-way frees its key after this long.
FINTECH_IDEMPOTENCY_LOCK_SECONDS = env_int("FINTECH_IDEMPOTENCY_LOCK_SECONDS", 60)

# --- Abuse controls (fintech/api/throttling.py) ----------------------------------------------
# Requests per window for a customer-linked token (and for an anonymous address): reads, and
# "money" = every write, money-moving POSTs first. Staff and service tokens get the multiple.
FINTECH_RATE_LIMIT_CUSTOMER_READS = env_int("FINTECH_RATE_LIMIT_CUSTOMER_READS", 600)
FINTECH_RATE_LIMIT_CUSTOMER_MONEY = env_int("FINTECH_RATE_LIMIT_CUSTOMER_MONEY", 60)
FINTECH_RATE_LIMIT_STAFF_MULTIPLIER = env_int("FINTECH_RATE_LIMIT_STAFF_MULTIPLIER", 10)
FINTECH_RATE_LIMIT_WINDOW_SECONDS = env_int("FINTECH_RATE_LIMIT_WINDOW_SECONDS", 60)
FINTECH_RATE_LIMIT_KEY_PREFIX = env_str("FINTECH_RATE_LIMIT_KEY_PREFIX", "fintech:ratelimit:")
# Redis unanswered: each process limits on its own for this long before trying Redis again.
FINTECH_RATE_LIMIT_REDIS_TIMEOUT_SECONDS = float(env_str("FINTECH_RATE_LIMIT_REDIS_TIMEOUT_SECONDS", "0.25"))
FINTECH_RATE_LIMIT_REDIS_RETRY_SECONDS = float(env_str("FINTECH_RATE_LIMIT_REDIS_RETRY_SECONDS", "5"))
# How many reverse proxies in front of the bank append to X-Forwarded-For (0: none, use the peer).
FINTECH_TRUSTED_PROXIES = env_int("FINTECH_TRUSTED_PROXIES", 0)

# --- Notifications (apps/notifications) ------------------------------------------------------
# E-mail goes through Django's e-mail backends: SMTP in production (EMAIL_HOST, ...); on the
# embedded default each message is a file in var/mail/ (EMAIL_BACKEND=...console.EmailBackend
# prints them instead).
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if PRODUCTION else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
FINTECH_NOTIFICATIONS_FROM_EMAIL = env_str("FINTECH_NOTIFICATIONS_FROM_EMAIL", "Fintech <avisos@fintech.localhost>")
# The fraud desk's mailbox for fraud.alert (empty: the back office is not written to).
FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL = env_str(
    "FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL", "fraud-desk@fintech.localhost"
)
FINTECH_NOTIFICATIONS_BACKOFFICE_LANGUAGE = env_str("FINTECH_NOTIFICATIONS_BACKOFFICE_LANGUAGE", "pt-BR")
# Push notifications go to the push provider's webhook, signed with the secret (both needed).
FINTECH_NOTIFICATIONS_WEBHOOK_URL = env_str("FINTECH_NOTIFICATIONS_WEBHOOK_URL")
FINTECH_NOTIFICATIONS_WEBHOOK_SECRET = env_str("FINTECH_NOTIFICATIONS_WEBHOOK_SECRET")
FINTECH_NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS = float(env_str("FINTECH_NOTIFICATIONS_WEBHOOK_TIMEOUT_SECONDS", "5"))
FINTECH_NOTIFICATIONS_MAX_ATTEMPTS = env_int("FINTECH_NOTIFICATIONS_MAX_ATTEMPTS", 8)
FINTECH_NOTIFICATIONS_RETRY_BASE_SECONDS = float(env_str("FINTECH_NOTIFICATIONS_RETRY_BASE_SECONDS", "2"))
FINTECH_NOTIFICATIONS_RETRY_MAX_SECONDS = float(env_str("FINTECH_NOTIFICATIONS_RETRY_MAX_SECONDS", "900"))
# A worker that took a notification and died frees it after this long (then it is sent again,
# under the same idempotency key).
FINTECH_NOTIFICATIONS_LEASE_SECONDS = env_int("FINTECH_NOTIFICATIONS_LEASE_SECONDS", 60)
FINTECH_NOTIFICATIONS_TIME_ZONE = env_str("FINTECH_NOTIFICATIONS_TIME_ZONE", "America/Sao_Paulo")

# --- Serving (config/gunicorn.py; `manage.py serve_bank` supervises the processes) ----------
# The web server: gunicorn, gthread workers. 0 workers: one per core this process may use.
FINTECH_WEB_BIND = env_str("FINTECH_WEB_BIND", "127.0.0.1:8000")
FINTECH_WEB_WORKERS = env_int("FINTECH_WEB_WORKERS", 0)
FINTECH_WEB_THREADS = env_int("FINTECH_WEB_THREADS", 8)
# Connections the kernel queues while every thread is busy (capped by net.core.somaxconn): a burst
# waits for a thread instead of being reset.
FINTECH_WEB_BACKLOG = env_int("FINTECH_WEB_BACKLOG", 2048)
# The Kafka consumer groups (`manage.py consume --group G`) that run beside the web server when
# KAFKA_BOOTSTRAP_SERVERS is set, e.g. "ledger,transactions".
FINTECH_KAFKA_CONSUMER_GROUPS = env_list("FINTECH_KAFKA_CONSUMER_GROUPS")
# Every long-running process of the bank: a name and its command line after the Python
# interpreter, run from the project's root. `manage.py serve_bank` starts each, restarts one that
# exits, and stops them all together; a context with a process of its own adds it here.
FINTECH_PROCESSES: dict[str, list[str]] = {
    "web": ["-m", "gunicorn", "--config", "python:config.gunicorn", "config.wsgi:application"],
    # The sweeper: delivers what in-process dispatch left behind (crashes, retries that are due).
    "dispatcher": ["manage.py", "dispatch_events"],
    # Ships committed events to the sink (a log by default, Kafka with KAFKA_BOOTSTRAP_SERVERS).
    "relay": ["manage.py", "relay_outbox"],
    # Sends the notifications the handlers recorded (e-mail, push webhook), retrying failures.
    "notifications": ["manage.py", "deliver_notifications"],
    # Flags the payments the network has not answered in time (never returns them).
    "overdue-payments": ["manage.py", "flag_overdue_payments", "--every", "60"],
    # Rejects the transfers and payments held for review longer than FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS.
    "fraud-review-expiry": ["manage.py", "expire_fraud_reviews"],
}
if KAFKA_BOOTSTRAP_SERVERS:
    FINTECH_PROCESSES |= {
        f"consumer-{group}": ["manage.py", "consume", "--group", group] for group in FINTECH_KAFKA_CONSUMER_GROUPS
    }
    # The payment network is outside: its answers and its credits are read by the payments group
    # (its screening steps run in process, so only the network's topics).
    FINTECH_PROCESSES["consumer-payments"] = [
        "manage.py",
        "consume",
        "--group",
        "payments",
        "--topics",
        "payment.processed,payment.received",
    ]

# --- Static, i18n ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_context": {"()": "fintech.observability.logging.RequestContextFilter"}},
    "formatters": {"json": {"()": "fintech.observability.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per request, from whichever server runs: gunicorn (`make run`) or runserver.
        "django.server": {"level": env_str("DJANGO_SERVER_LOG_LEVEL", "INFO")},
        "gunicorn.access": {"level": env_str("DJANGO_SERVER_LOG_LEVEL", "INFO"), "propagate": True},
        # gunicorn gives its loggers their own plain-text handlers; these send them to the JSON one.
        "gunicorn.error": {"level": LOG_LEVEL, "propagate": True},
    },
}

# --- Security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
# fintech.api.security.RequestBodyLimitMiddleware refuses larger bodies with 413 before they
# are read: FINTECH_MAX_BODY_BYTES everywhere but the paths with a limit of their own (a batch
# of up to 1,000 transfers is about 200 KB of JSON). Django's own cap only backs it up.
FINTECH_MAX_BODY_BYTES = env_int("FINTECH_MAX_BODY_BYTES", 64 * 1024)
FINTECH_BODY_LIMIT_OVERRIDES = {"/api/v1/transfers/batch": env_int("FINTECH_MAX_BATCH_BODY_BYTES", 1024 * 1024)}
DATA_UPLOAD_MAX_MEMORY_SIZE = max(FINTECH_MAX_BODY_BYTES, *FINTECH_BODY_LIMIT_OVERRIDES.values())
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True


def _refuse_insecure_production() -> None:
    problems = []
    if not SECRET_KEY or SECRET_KEY == _INSECURE_SECRET or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        problems.append("SECRET_KEY must be set to a random value of at least 50 characters")
    if DEBUG:
        problems.append("DEBUG must be off")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS must name the hosts that serve the bank")
    if not OIDC_ISSUER:
        problems.append("OIDC_ISSUER must name the identity provider (the dev issuer is refused)")
    if not env_str("DATABASE_URL"):
        problems.append("DATABASE_URL must point at PostgreSQL (SQLite is the embedded default only)")
    from fintech.crypto.keyring import configuration_problems, shared_key_ring_problems

    problems.extend(configuration_problems(FINTECH_ENCRYPTION_KEYS, FINTECH_BLIND_INDEX_KEY))
    if FINTECH_NOTIFICATIONS_WEBHOOK_URL and len(FINTECH_NOTIFICATIONS_WEBHOOK_SECRET) < 32:
        problems.append("FINTECH_NOTIFICATIONS_WEBHOOK_SECRET must be at least 32 characters when the webhook is set")
    if FINTECH_PAYMENT_NETWORK == "simulator-inline":
        problems.append("FINTECH_PAYMENT_NETWORK=simulator-inline is a simulator: production pays through the network")
    problems.extend(
        shared_key_ring_problems(
            FINTECH_PAYMENT_NETWORK_KEYS, setting="FINTECH_PAYMENT_NETWORK_KEYS", private_keys=FINTECH_ENCRYPTION_KEYS
        )
    )
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems))


if PRODUCTION:
    _refuse_insecure_production()
