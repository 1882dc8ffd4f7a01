"""Refusals of the transfers and deposits context."""

from __future__ import annotations

from fintech.errors import Conflict, NotFound, Unprocessable, ValidationFailed


class TransferNotFound(NotFound):
    code = "transfer_not_found"
    title = "Transfer not found"


class DuplicateReference(Conflict):
    code = "duplicate_reference"
    title = "A deposit with this reference already exists"


class TransferStateError(Conflict):
    code = "transfer_state_conflict"
    title = "The transfer is in a state that does not allow this"


class DuplicateItem(ValidationFailed):
    code = "duplicate_item"
    title = "The batch names this transfer id twice"


class TransferIdReused(Unprocessable):
    code = "idempotency_key_reuse"
    title = "This transfer id was already used for another transfer"
