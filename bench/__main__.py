"""`python -m bench [--only transfers,ledger,...] [--<count> N ...]`: run the benchmark sections
against the benchmark database and write docs/benchmarks.md. `make bench` is the usual way in."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from bench.options import SECTIONS, Options

BENCH_DATABASE = "fintech_bench"
BENCH_STATE = "/var/tmp/fintech-local/bench"
# High enough that the bank's abuse controls never refuse the benchmark's own requests.
UNLIMITED = str(10**9)


def parse(argv: list[str]) -> tuple[argparse.Namespace, Options]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default="", help=f"comma-separated sections (default all): {','.join(SECTIONS)}")
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out")
    parser.add_argument("--no-docs", action="store_true", help="print the table, leave docs/benchmarks.md alone")
    defaults = Options()
    for field in fields(Options):
        value = getattr(defaults, field.name)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    options = Options(**{f.name: getattr(args, f.name) for f in fields(Options)})
    return args, options


def selected(args: argparse.Namespace) -> list[str]:
    only = [s.strip() for s in args.only.split(",") if s.strip()] or list(SECTIONS)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = sorted((set(only) | skip) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in only and s not in skip]


def bench_database_url() -> str:
    """The benchmark's own database on the server DATABASE_URL names: never the bank's."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        url = explicit
    else:
        base = os.environ.get("DATABASE_URL")
        if not base:
            raise SystemExit('DATABASE_URL must name the PostgreSQL server (eval "$(make -s services-up)")')
        parts = urlsplit(base)
        url = urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))
    name = urlsplit(url).path.lstrip("/")
    if name in {"fintech", ""}:
        raise SystemExit(f"refusing to benchmark in the database {name!r}: use a database of its own")
    return url


def ensure_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def configure() -> None:
    """The environment of the benchmark process, set before Django reads its settings."""
    url = bench_database_url()
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["FINTECH_EVENT_DISPATCH"] = "inline"
    # As make run serves: a transfer's steps run in its unit of work; the reactions
    # (notifications, analytics) are the dispatcher's, after the commit (ADR 3).
    os.environ.setdefault("FINTECH_REACTIONS_IN_PROCESS", "0")
    # As in production: DEBUG off (Django keeps no log of every query); the counts below turn
    # the query log on for the block they measure.
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("FINTECH_VAR_DIR", f"{BENCH_STATE}/var")
    for name in ("FINTECH_RATE_LIMIT_CUSTOMER_READS", "FINTECH_RATE_LIMIT_CUSTOMER_MONEY"):
        os.environ[name] = UNLIMITED
    # The benchmark's tokens come from the dev issuer; the rate limits stay in process.
    for name in ("OIDC_ISSUER", "REDIS_URL"):
        os.environ.pop(name, None)
    os.makedirs(os.environ["FINTECH_VAR_DIR"], exist_ok=True)
    ensure_database(url)


def main(argv: list[str] | None = None) -> int:
    args, options = parse(sys.argv[1:] if argv is None else argv)
    # `make bench` bounds the run with timeout(1), which sends SIGTERM: unwind, so that every
    # section's `finally` stops the server and the client processes it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    sections = selected(args)
    configure()
    import django

    django.setup()
    from django.core.management import call_command

    from bench import report
    from bench.harness import Section, git_commit, say

    say(f"database {urlsplit(os.environ['DATABASE_URL']).path.lstrip('/')}; sections: {', '.join(sections)}")
    call_command("migrate", "--noinput", verbosity=0)
    commit = git_commit()
    results: list[Section] = []
    for name in sections:
        section = Section(name=name, title=report.TITLES[name])
        section.date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        section.commit = commit
        started = time.monotonic()
        load_at_start = f"{os.getloadavg()[0]:.1f}"
        say(f"--- {name}: {section.title}")
        try:
            runner(name)(options, section)
        except Exception as error:  # noqa: BLE001 - one broken section must not hide the others' figures
            import traceback

            traceback.print_exc()
            section.note(f"FAILED: {type(error).__name__}: {error}")
        section.seconds = time.monotonic() - started
        # The machine is shared (the database, the server, and whatever else runs): say how busy it was.
        section.notes.append(
            f"machine load while measured: 1-min load average {load_at_start} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end (2 cores)"
        )
        say(f"--- {name} took {section.seconds:.0f} s")
        results.append(section)
    sys.stdout.write(report.table(results) + "\n")
    if not args.no_docs:
        path = report.write(results, options=options, argv=sys.argv[1:] if argv is None else argv)
        say(f"wrote {path}")
    return 0


def runner(name: str) -> Callable[..., None]:
    from bench.sections import http, ledger, reads, relay, transfers

    return {
        "transfers": transfers.run_transfers,
        "statements": transfers.run_statements,
        "hot": transfers.run_hot,
        "ledger": ledger.run_ledger,
        "batch": http.run_batch,
        "http": http.run_http,
        "reads": reads.run_reads,
        "relay": relay.run_relay,
    }[name]


if __name__ == "__main__":
    raise SystemExit(main())
