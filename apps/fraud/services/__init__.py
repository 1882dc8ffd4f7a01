"""Commands of the fraud context, by topic: screening transfers and payments (`screening`),
deciding and expiring reviews (`reviews`), and changing the rules and the deny list
(`rule_book`)."""

from apps.audit import public as audit
from apps.fraud.services.reviews import (
    OPERATION_ENDED_ACTOR,
    REVIEW_TIMEOUT_ACTOR,
    review_approve,
    review_reject,
    reviews_expire,
    reviews_withdraw,
)
from apps.fraud.services.rule_book import deny_list_add, deny_list_remove, deny_list_value, rule_change
from apps.fraud.services.screening import RULES_ACTOR, accounts_opened, operations_screen

# Who decides when the back office acts through the Django admin (the audit trail's word for it).
ADMIN = audit.ActorType.ADMIN

__all__ = [
    "ADMIN",
    "OPERATION_ENDED_ACTOR",
    "REVIEW_TIMEOUT_ACTOR",
    "RULES_ACTOR",
    "accounts_opened",
    "deny_list_add",
    "deny_list_remove",
    "deny_list_value",
    "operations_screen",
    "review_approve",
    "review_reject",
    "reviews_expire",
    "reviews_withdraw",
    "rule_change",
]
