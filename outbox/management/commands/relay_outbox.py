from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from fintech.kafka.producer import DeliveryFailed
from outbox.loop import StopSignal, run_until_stopped
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
        if options["once"]:
            sink = build_sink(options["sink"])
            try:
                shipped = relay_pending(sink, batch_size=options["batch_size"])
            finally:
                sink.close()
            self.stdout.write(f"relayed {shipped} events to {sink.name}")
            return

        stop = StopSignal()
        state: dict[str, Any] = {"sink": build_sink(options["sink"]), "backoff": 0.5}

        def step() -> int:
            try:
                shipped = relay_batch(state["sink"], batch_size=options["batch_size"])
            except Exception as error:  # the sink is away: wait, then start over with a new one
                if isinstance(error, DeliveryFailed):  # expected while the broker is away: no traceback
                    logger.warning("relay batch not acknowledged (%s); retrying in %.1fs", error, state["backoff"])
                else:
                    logger.exception("relay batch failed; retrying in %.1fs", state["backoff"])
                # A producer whose records timed out may be left unusable (an idempotent producer's
                # fatal state): a fresh one per retry keeps a broker outage from outliving itself.
                _close_quietly(state["sink"])
                stop.event.wait(state["backoff"])  # a SIGTERM during the wait ends it at once
                state["backoff"] = min(state["backoff"] * 2, MAX_BACKOFF_SECONDS)
                state["sink"] = build_sink(options["sink"])
                return 0
            state["backoff"] = 0.5
            return shipped

        try:
            run_until_stopped(step, idle_seconds=options["idle"], stop=stop)
        finally:
            _close_quietly(state["sink"])


MAX_BACKOFF_SECONDS = 5.0


def _close_quietly(sink: Any) -> None:
    try:
        sink.close()
    except Exception:  # closing a broken producer must not hide the error that broke it
        logger.warning("could not close the relay sink cleanly", exc_info=True)
