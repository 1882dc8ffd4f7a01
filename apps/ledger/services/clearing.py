"""Money to and from other banks: the bank's clearing account (a liability: what it owes the
network for payments sent and not yet answered) and its settlement account (an asset: its
reserve at the central bank, through which the network settles).

- sent: the payment's hold is posted from the customer to clearing;
- settled by the network: clearing -> settlement (the money left the bank);
- returned by the network: clearing -> the customer (the money came back);
- a credit from another bank: settlement -> the customer.

Each posting has its own key (`payment-settlement:<payment id>`, ...), spelled only here, so a
redelivered answer or credit posts once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from apps.ledger.errors import HoldNotFound
from apps.ledger.models import Hold, JournalTransaction, LedgerAccount, Side
from apps.ledger.services.chart import account_of, system_account
from apps.ledger.services.holds import hold_key
from apps.ledger.services.posting import JournalRequest, Posting, post_transaction, post_transactions


def payments_to_clearing(
    payment_ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> dict[uuid.UUID, JournalTransaction | None]:
    """Post the holds of payments leaving for the network, customer -> clearing, in one batch.
    Per payment: its journal transaction (posted now or before: posting twice moves money once),
    or None when its hold was voided. A hold never placed raises HoldNotFound."""
    keys = {hold_key("payment", payment_id): payment_id for payment_id in payment_ids}
    holds = {hold.hold_key: hold for hold in Hold.objects.filter(hold_key__in=list(keys))}
    missing = [key for key in keys if key not in holds]
    if missing:
        raise HoldNotFound(f"No hold {missing[0]}.")
    outcome: dict[uuid.UUID, JournalTransaction | None] = {}
    requests: list[JournalRequest] = []
    clearing: dict[str, LedgerAccount] = {}
    for key, payment_id in keys.items():
        hold = holds[key]
        if hold.status == Hold.Status.VOIDED:
            outcome[payment_id] = None
            continue
        if hold.currency not in clearing:
            clearing[hold.currency] = system_account("clearing", hold.currency)
        requests.append(
            JournalRequest(
                posting_key=key,
                kind=JournalTransaction.Kind.PAYMENT,
                reference=str(payment_id),
                description="Payment to another bank, sent to the network",
                consumes_hold_key=key,
                postings=[
                    Posting(account_id=hold.account_id, side=Side.DEBIT, amount=hold.amount, currency=hold.currency),
                    Posting(
                        account_id=clearing[hold.currency].id,
                        side=Side.CREDIT,
                        amount=hold.amount,
                        currency=hold.currency,
                    ),
                ],
            )
        )
    for request, journal in zip(requests, post_transactions(requests, now=now), strict=True):
        outcome[keys[request.posting_key]] = journal
    return outcome


def _move(
    *,
    posting_key: str,
    reference: str,
    description: str,
    debit: LedgerAccount,
    credit: LedgerAccount,
    amount: int,
    currency: str,
    now: datetime | None,
) -> JournalTransaction:
    return post_transaction(
        JournalRequest(
            posting_key=posting_key,
            kind=JournalTransaction.Kind.PAYMENT,
            reference=reference,
            description=description,
            postings=[
                Posting(account_id=debit.id, side=Side.DEBIT, amount=amount, currency=currency),
                Posting(account_id=credit.id, side=Side.CREDIT, amount=amount, currency=currency),
            ],
        ),
        now=now,
    )


def payment_settle(
    *, payment_id: uuid.UUID, amount: int, currency: str, now: datetime | None = None
) -> JournalTransaction:
    """The network settled the payment: clearing -> settlement."""
    return _move(
        posting_key=f"payment-settlement:{payment_id}",
        reference=str(payment_id),
        description="Payment settled by the network",
        debit=system_account("clearing", currency),
        credit=system_account("settlement", currency),
        amount=amount,
        currency=currency,
        now=now,
    )


def payment_return(
    *,
    payment_id: uuid.UUID,
    account_id: uuid.UUID,
    amount: int,
    currency: str,
    reason: str,
    now: datetime | None = None,
) -> JournalTransaction:
    """The network returned the payment: clearing -> the customer's account."""
    return _move(
        posting_key=f"payment-return:{payment_id}",
        reference=str(payment_id),
        description=f"Payment returned: {reason}",
        debit=system_account("clearing", currency),
        credit=account_of(account_id),
        amount=amount,
        currency=currency,
        now=now,
    )


def payment_credit(
    *, end_to_end_id: str, account_id: uuid.UUID, amount: int, currency: str, now: datetime | None = None
) -> JournalTransaction:
    """Another bank's credit for our customer, settled to us by the network: settlement -> the customer."""
    return _move(
        posting_key=f"payment-credit:{end_to_end_id}",
        reference=end_to_end_id,
        description="Payment received from another bank",
        debit=system_account("settlement", currency),
        credit=account_of(account_id),
        amount=amount,
        currency=currency,
        now=now,
    )
