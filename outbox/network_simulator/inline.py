"""The payment network simulated in this process, on the in-process bus: the embedded default
(`FINTECH_PAYMENT_NETWORK=simulator-inline`, refused in production), so that `make run` settles a
payment with no server at all.

A reaction to `payment.requested` asks the simulated network (`network.PaymentNetwork`) for its
answer and records that answer in the outbox as the message it is (`record_incoming`: validated
against its schema, the network's envelope kept). The dispatcher then hands it to every handler
of `payment.processed` (the payments context books it, or refuses to; notifications and analytics
read only what it booked), each once through the inbox, with retries and dead letters: the same
handlers and services as for a record a consumer group reads from Kafka; only the transport
differs. A reaction to
`payment.credit_returned` gives the network back a credit the bank refused. The network's day is
written to FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.utils import timezone

from fintech import bus
from fintech.events import ReceivedEvent
from outbox.network_simulator.network import PaymentNetwork, SettlementBook
from outbox.publisher import record_incoming

MODE = "simulator-inline"
ANSWER_REQUESTS = "payment_network_simulator.answer_payment_requests"
TAKE_BACK_CREDITS = "payment_network_simulator.take_back_returned_credits"


def active() -> bool:
    return bool(settings.FINTECH_PAYMENT_NETWORK == MODE)


def network() -> PaymentNetwork:
    return PaymentNetwork(book=SettlementBook(settings.FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE))


def deliver(envelope: dict[str, Any]) -> None:
    """Hand a message of the network to the bank: recorded in the outbox (in the unit of work
    open, or one of its own), delivered to the handlers of its type after the commit."""
    record_incoming(envelope)


def answer_payment_requests(events: Sequence[ReceivedEvent]) -> None:
    if not active():  # switched off at run time (tests that answer for the network themselves)
        return
    simulated = network()
    for event in events:
        for answer in simulated.answer(event.data, now=timezone.now()):
            deliver(answer)


def take_back_returned_credits(events: Sequence[ReceivedEvent]) -> None:
    if not active():
        return
    simulated = network()
    for event in events:
        simulated.credit_returned(event.data)


def install() -> None:
    """Subscribe the simulator's reactions (outbox/apps.py does, when the setting asks for it)."""
    bus.subscribe("payment.requested", name=ANSWER_REQUESTS, batch=True)(answer_payment_requests)
    bus.subscribe("payment.credit_returned", name=TAKE_BACK_CREDITS, batch=True)(take_back_returned_credits)


def uninstall() -> None:
    bus.unsubscribe(ANSWER_REQUESTS)
    bus.unsubscribe(TAKE_BACK_CREDITS)


def installed() -> bool:
    return bus.subscription_named(ANSWER_REQUESTS) is not None
