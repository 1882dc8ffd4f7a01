from prometheus_client import Counter, Gauge

PAYMENTS_ANSWERED = Counter(
    "fintech_payments_answered_total", "Network answers booked, by outcome (settled, returned)", ["outcome"]
)
NETWORK_MESSAGES_IGNORED = Counter(
    "fintech_payment_network_messages_ignored_total",
    "Messages of the payment network that were not booked: duplicates, unknown payments, other amounts, ...",
    ["message_type", "reason"],
)
INBOUND_CREDITS = Counter(
    "fintech_payment_inbound_credits_total", "Credits from other banks, by outcome (credited, returned)", ["outcome"]
)
PAYMENTS_FLAGGED_OVERDUE = Counter(
    "fintech_payments_flagged_overdue_total", "Payments flagged for operations: no answer from the network in time"
)
PAYMENTS_OVERDUE = Gauge(
    "fintech_payments_overdue", "Payments sent to the network, past their answer time and still unanswered"
)
