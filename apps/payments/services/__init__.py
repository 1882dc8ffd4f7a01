"""Commands of the payments context, by topic: outbound payments (`outbound`: accepted,
screened, sent), the network's answers to them (`answers`), and the network's credits for our
customers (`inbound`). How a payment goes: docs/adr/0005-payments-and-the-network.md."""

from apps.payments.services.answers import NetworkAnswer, payment_answer_record, payments_flag_overdue
from apps.payments.services.inbound import CreditOrder, payment_credit_receive
from apps.payments.services.outbound import beneficiary_of, payment_initiate, payment_review_decide, payments_screen

__all__ = [
    "CreditOrder",
    "NetworkAnswer",
    "beneficiary_of",
    "payment_answer_record",
    "payment_credit_receive",
    "payment_initiate",
    "payment_review_decide",
    "payments_flag_overdue",
    "payments_screen",
]
