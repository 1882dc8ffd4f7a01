from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from outbox.loop import StopSignal
from outbox.network_simulator import inline
from outbox.network_simulator.network import PaymentNetwork, SettlementBook


def _rate(text: str) -> float:
    rate = float(text)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("a rate is between 0 and 1")
    return rate


class Command(BaseCommand):
    help = (
        "A SIMULATOR of the payment network (the outside party between banks), for demos and tests: over Kafka "
        "it answers payment.requested on payment.processed after --delay, with --return-rate returns and "
        "--duplicate-rate duplicated answers, sends credits for our accounts on payment.received (--credit), "
        "takes back the credits the bank returns, and keeps the day's settlement file (--settlement-file), "
        "until SIGTERM. Without Kafka it only delivers --credit in process (the embedded default answers "
        "payments in process by itself)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--delay", type=float, default=1.0, help="Seconds before the network answers a batch.")
        parser.add_argument("--return-rate", type=_rate, default=0.0, help="Share of payments returned (0 to 1).")
        parser.add_argument(
            "--duplicate-rate", type=_rate, default=0.0, help="Share of answers and credits sent twice (0 to 1)."
        )
        parser.add_argument(
            "--credit",
            nargs=2,
            action="append",
            default=[],
            metavar=("ACCOUNT_NUMBER", "AMOUNT"),
            help="Send a credit of AMOUNT minor units to our account ACCOUNT_NUMBER (e.g. 12345678-9); repeatable.",
        )
        parser.add_argument("--branch", default="0001", help="Our branch of the --credit accounts.")
        parser.add_argument("--currency", default=settings.FINTECH_DEFAULT_CURRENCY, help="Currency of --credit.")
        parser.add_argument(
            "--settlement-file",
            help="Keep the network's settlement file (CSV) here; {date} in the path makes one file a day.",
        )
        parser.add_argument("--seed", type=int, default=None, help="Seed of the returns and duplicates drawn.")
        parser.add_argument("--group-id", default=None, help="Its Kafka consumer group (payment-network-simulator).")
        parser.add_argument("--idle-timeout", type=float, default=None, help="Stop after this many idle seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        credits = []
        for account_number, amount in options["credit"]:
            if not amount.isdigit() or int(amount) <= 0:
                raise CommandError(f"--credit {account_number} {amount}: the amount is a positive whole number")
            credits.append((account_number, int(amount)))
        settlement_file = options["settlement_file"]
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            if not credits:
                raise CommandError(
                    "The simulator plays the network over Kafka: set KAFKA_BOOTSTRAP_SERVERS. Without Kafka, "
                    "FINTECH_PAYMENT_NETWORK=simulator-inline (the embedded default) answers payments in process; "
                    "--credit alone delivers credits in process."
                )
            book = SettlementBook(settlement_file or settings.FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE)
            self._credit_in_process(credits, options, book)
            return
        from outbox.network_simulator.kafka import DEFAULT_GROUP_ID, CreditOrder, KafkaNetworkSimulator

        network = PaymentNetwork(
            book=SettlementBook(settlement_file),
            return_rate=options["return_rate"],
            duplicate_rate=options["duplicate_rate"],
            rng=random.Random(options["seed"]),
        )
        stop = StopSignal()
        stop.install()
        simulator = KafkaNetworkSimulator(
            network, delay=options["delay"], group_id=options["group_id"] or DEFAULT_GROUP_ID, stop=stop
        )
        orders = [
            CreditOrder(account_number=number, amount=amount, currency=options["currency"], branch=options["branch"])
            for number, amount in credits
        ]
        report = simulator.run(credits=orders, idle_timeout=options["idle_timeout"])
        self.stdout.write(
            f"requests={report.requests} answers={report.answers} credits={report.credits} "
            f"credit_returns={report.credit_returns} unreadable={report.unreadable}"
        )

    def _credit_in_process(self, credits: list[tuple[str, int]], options: dict[str, Any], book: SettlementBook) -> None:
        network = PaymentNetwork(
            book=book,
            duplicate_rate=options["duplicate_rate"],
            rng=random.Random(options["seed"]),
        )
        for number, amount in credits:
            for message in network.credit(
                account_number=number,
                amount=amount,
                currency=options["currency"],
                branch=options["branch"],
                now=timezone.now(),
            ):
                inline.deliver(message)
                self.stdout.write(f"credit {message['subject']}: {amount} {options['currency']} to {number}")
