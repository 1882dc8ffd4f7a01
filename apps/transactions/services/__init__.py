"""Commands of transfers and deposits, by topic: one transfer through the choreography
(`transfers`), many transfers in one request (`batches`), and deposits (`deposits`). The app
keeps the contract's label, `transactions`; its code says transfer where it means one."""

from apps.transactions.services.batches import BatchItemOutcome, TransferRequest, transfers_initiate
from apps.transactions.services.deposits import deposit_make
from apps.transactions.services.transfers import (
    transfer_complete,
    transfer_fail,
    transfer_initiate,
    transfers_complete,
    transfers_reviewed,
    transfers_screened,
)

__all__ = [
    "BatchItemOutcome",
    "TransferRequest",
    "deposit_make",
    "transfer_complete",
    "transfer_fail",
    "transfer_initiate",
    "transfers_complete",
    "transfers_initiate",
    "transfers_reviewed",
    "transfers_screened",
]
