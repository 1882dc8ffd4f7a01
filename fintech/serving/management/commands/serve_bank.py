from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fintech.serving.supervisor import Supervisor


class Command(BaseCommand):
    help = (
        "Serve the bank: run every process of settings.FINTECH_PROCESSES (the web server, the "
        "dispatcher, the relay, and with Kafka the configured consumers), restart one that exits, "
        "and stop them all on SIGTERM/SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", help="HOST:PORT the web server listens on (default FINTECH_WEB_BIND).")
        parser.add_argument(
            "--status-file",
            type=Path,
            help="Where the supervisor keeps its own and each process's pid (default var/serve-bank.json).",
        )
        parser.add_argument(
            "--stop-timeout", type=float, default=30.0, help="Seconds each process gets to stop before SIGKILL."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bind = options["bind"] or settings.FINTECH_WEB_BIND
        refuse_a_taken_address(bind)
        supervisor = Supervisor(
            settings.FINTECH_PROCESSES,
            cwd=settings.BASE_DIR,
            env={**os.environ, "FINTECH_WEB_BIND": bind},
            status_path=options["status_file"] or settings.VAR_DIR / "serve-bank.json",
            stop_timeout=options["stop_timeout"],
        )
        supervisor.run()


def refuse_a_taken_address(bind: str) -> None:
    """Fail at once, with a sentence, when something already listens there (instead of a web
    process that exits and is restarted again and again)."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        return  # a unix socket or another form gunicorn understands: it reports its own errors
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.create_server((host, int(port)), family=family):
            pass
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise CommandError(f"{bind} is already in use (is the bank already running?)") from error
        raise CommandError(f"cannot listen on {bind}: {error.strerror}") from error
