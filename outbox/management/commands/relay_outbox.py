from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from outbox.loop import run_until_stopped
from outbox.relay import relay_batch, relay_pending
from outbox.sinks import build_sink

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Ship committed outbox events to the configured sink (log, file or Kafka) until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Ship everything pending, then exit.")
        parser.add_argument("--sink", help="Override FINTECH_RELAY_SINK for this run.")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--idle", type=float, default=0.5, help="Seconds to wait when nothing is pending.")

    def handle(self, *args: Any, **options: Any) -> None:
        sink = build_sink(options["sink"])
        try:
            if options["once"]:
                shipped = relay_pending(sink, batch_size=options["batch_size"])
                self.stdout.write(f"relayed {shipped} events to {sink.name}")
                return

            backoff = [1.0]

            def step() -> int:
                try:
                    shipped = relay_batch(sink, batch_size=options["batch_size"])
                except Exception:
                    logger.exception("relay batch failed; retrying in %.0fs", backoff[0])
                    time.sleep(backoff[0])
                    backoff[0] = min(backoff[0] * 2, 30.0)
                    return 0
                backoff[0] = 1.0
                return shipped

            run_until_stopped(step, idle_seconds=options["idle"])
        finally:
            sink.close()
