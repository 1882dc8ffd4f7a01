"""Figure 8: the relay, reusing `manage.py bench_relay` (its events/s against the raw
producer's for the same records)."""

from __future__ import annotations

import io
import json

from django.conf import settings
from django.core.management import call_command

from bench import fixtures
from bench.harness import Row, Section, say
from bench.options import Options


def run_relay(options: Options, section: Section) -> None:
    if not settings.KAFKA_BOOTSTRAP_SERVERS:
        section.note("not available: KAFKA_BOOTSTRAP_SERVERS is not set (make bench starts Kafka)")
        return
    fixtures.fresh_spine()  # bench_relay needs a drained outbox; these rows are the benchmark's own
    say(f"relay: bench_relay --events {options.relay_events} --rounds {options.relay_rounds}")
    out = io.StringIO()
    call_command("bench_relay", events=options.relay_events, rounds=options.relay_rounds, json=True, stdout=out)
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    ratio = float(result["relay_to_raw_ratio"])
    section.add(
        Row(
            f"Relay, PostgreSQL -> Kafka, {result['event_bytes']} B events (median of {result['rounds']})",
            float(result["relay_events_per_second"]),
            "events/s",
            "raw confluent-kafka producer, same records",
            float(result["raw_producer_events_per_second"]),
            ratio,
            ">= 0.5x raw producer",
            ratio >= 0.5,
            f"rounds: relay {result['relay_rates']}, raw {result['raw_rates']}",
        )
    )
    section.note(
        f"`manage.py bench_relay --events {options.relay_events} --rounds {options.relay_rounds}` "
        "(fewer events and rounds than `make bench-relay`'s 50,000 x 5, to keep `make bench` short; the relay's "
        "own history is above)."
    )
