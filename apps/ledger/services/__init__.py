"""Commands of the ledger, by topic: the chart of accounts (`chart`), posting journal
transactions (`posting`), holds on money in flight (`holds`), and money to and from other banks
through clearing and settlement (`clearing`)."""

from apps.ledger.services.chart import (
    SYSTEM_PURPOSES,
    customer_account_code,
    customer_ledger_account_open,
    ledger_account_open,
    system_account,
    system_account_code,
)
from apps.ledger.services.clearing import (
    payment_credit,
    payment_return,
    payment_settle,
    payments_to_clearing,
)
from apps.ledger.services.holds import (
    HoldPosting,
    HoldRequest,
    hold_key,
    hold_place,
    hold_post,
    hold_void,
    holds_place,
    holds_post,
)
from apps.ledger.services.posting import (
    JournalRequest,
    Posting,
    deposit_post,
    journal_reverse,
    post_transaction,
    post_transactions,
)

__all__ = [
    "SYSTEM_PURPOSES",
    "HoldPosting",
    "HoldRequest",
    "JournalRequest",
    "Posting",
    "customer_account_code",
    "customer_ledger_account_open",
    "deposit_post",
    "hold_key",
    "hold_place",
    "hold_post",
    "hold_void",
    "holds_place",
    "holds_post",
    "journal_reverse",
    "ledger_account_open",
    "payment_credit",
    "payment_return",
    "payment_settle",
    "payments_to_clearing",
    "post_transaction",
    "post_transactions",
    "system_account",
    "system_account_code",
]
