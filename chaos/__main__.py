"""`python -m chaos [--only web,kafka,...] [--transfers N] [--seconds S]`: the bank under faults.

`make chaos` is the usual way in. It starts its own PostgreSQL and Kafka (chaos.stack), and for
each scenario (chaos.scenarios) serves the bank with `manage.py serve_bank`, drives the load
(chaos.load) while the faults strike (chaos.faults), waits for the bank to finish, and checks
what it did (chaos.checks). It prints the table and writes it into docs/reliability.md. Every
process it started is stopped at the end, also on Ctrl-C or SIGTERM. Exits 1 if a scenario failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from chaos.provider import PushProvider
from chaos.stack import Bank, Stack, say

SCOPES = (
    "customers:read customers:write kyc:review accounts:read accounts:write deposits:write "
    "transfers:read transfers:write payments:write fraud:review"
)
# High enough that the abuse controls never refuse the load's own requests.
UNLIMITED = str(10**9)
# What the bank's environment does not inherit from the caller's: everything it reads is set here.
NOT_INHERITED = (
    "FINTECH_",
    "DATABASE_",
    "DB_",
    "KAFKA_",
    "REDIS_",
    "OIDC_",
    "SQLITE_",
    "DJANGO_",
    "EMAIL_",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "LOG_LEVEL",
)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all; --list names them)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--transfers", type=int, default=250, help="transfers per scenario (default 250)")
    parser.add_argument("--seconds", type=float, default=25.0, help="seconds of load per scenario (default 25)")
    parser.add_argument("--settle", type=float, default=240.0, help="seconds to wait for the bank to finish")
    parser.add_argument("--clients", type=int, default=12, help="concurrent client threads (default 12)")
    parser.add_argument("--groups", default="", help="Kafka consumer groups (default: every context with handlers)")
    parser.add_argument("--seed", type=int, default=14, help="seed of the load's random choices")
    parser.add_argument("--no-docs", action="store_true", help="print the table, leave docs/reliability.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data and the bank's logs in any case")
    return parser.parse_args(argv)


def bank_env(exports: dict[str, str], var_dir: Path, push_url: str) -> dict[str, str]:
    """The bank as `make chaos` runs it: PostgreSQL and Kafka, the outbox kept for the audit of
    what was written, notifications to a push provider and to e-mail files. Each scenario adds how
    the events are handed out (chaos.scenarios.DISPATCH)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(NOT_INHERITED)}
    return (
        env
        | exports
        | {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "DJANGO_SERVER_LOG_LEVEL": "WARNING",  # one line per request would drown the log
            "FINTECH_VAR_DIR": str(var_dir),
            "FINTECH_OUTBOX_KEEP_SHIPPED": "1",
            "FINTECH_RATE_LIMIT_CUSTOMER_READS": UNLIMITED,
            "FINTECH_RATE_LIMIT_CUSTOMER_MONEY": UNLIMITED,
            "FINTECH_NOTIFICATIONS_WEBHOOK_URL": push_url,
            "FINTECH_NOTIFICATIONS_WEBHOOK_SECRET": uuid.uuid4().hex * 2,
            # A sender killed mid-send leaves a lease: short, so the run does not wait a minute for it.
            "FINTECH_NOTIFICATIONS_LEASE_SECONDS": "10",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(var_dir / "mail"),
        }
    )


def git_commit() -> str:
    from bench.harness import git_commit as commit_of_bench

    return commit_of_bench()


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    # `make chaos` bounds the run with timeout(1), which sends SIGTERM: unwind, so that every
    # `finally` below stops what it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    stack = Stack()
    provider = PushProvider()
    var_dir = stack.directory / "var"
    exports = stack.postgres.exports() | stack.kafka.exports()  # known before the servers start
    env = bank_env(exports, var_dir, provider.url)
    os.environ.update(env)
    import django

    django.setup()
    from django.conf import settings

    from chaos.scenarios import scenarios
    from fintech import bus

    groups = [g.strip() for g in args.groups.split(",") if g.strip()] or sorted(
        {sub.context for sub in bus.all_subscriptions()}
    )
    env["FINTECH_KAFKA_CONSUMER_GROUPS"] = ",".join(groups)
    processes = [name for name in settings.FINTECH_PROCESSES if not name.startswith("consumer-")]
    processes += [f"consumer-{group}" for group in groups]
    every = scenarios(processes, seconds=args.seconds)
    if args.list:
        for scenario in every:
            sys.stdout.write(f"{scenario.name:28} {scenario.what}\n")
        return 0
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - {scenario.name for scenario in every})
    if unknown:
        raise SystemExit(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(s.name for s in every)}")
    chosen = [scenario for scenario in every if not only or scenario.name in only]

    stop = threading.Event()
    passed, keep = False, True  # the logs and data stay for a post-mortem unless every scenario passed
    try:
        provider.start()
        stack.start()
        var_dir.mkdir(parents=True, exist_ok=True)
        say("migrating and creating the topics")
        setup = Bank(env, var_dir)
        setup.manage("migrate", "--noinput", "-v", "0")
        setup.manage("kafka_topics")
        token = setup.manage("issue_token", "--sub", "chaos-client", "--scopes", SCOPES).strip()
        from chaos.run import Runner

        runner = Runner(
            env=env,
            var_dir=var_dir,
            stack=stack,
            provider=provider,
            token=token,
            processes=processes,
            options=args,
            stop=stop,
        )
        started = time.monotonic()
        try:
            rows = [runner.scenario(scenario) for scenario in chosen]
        finally:
            runner.shutdown()
        say(f"{len(rows)} scenarios in {(time.monotonic() - started) / 60:.1f} min")
        from chaos import report

        sys.stdout.write(report.table([report.cells(row) for row in rows]) + "\n")
        for row in rows:
            if row.problems:
                sys.stdout.write(f"{row.scenario}: {'; '.join(row.problems)}\n")
        if not args.no_docs:
            command = "make chaos" + (f" CHAOS_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "")
            when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
            path = report.write(rows, every, report.Run(date=when, commit=git_commit(), command=command))
            say(f"wrote {path}")
        passed = all(row.passed for row in rows)
        keep = args.keep or not passed
    except (KeyboardInterrupt, SystemExit):
        keep = False  # stopped on purpose: nothing to look into
        raise
    finally:
        stop.set()
        provider.stop()
        stack.stop(keep=keep)
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
