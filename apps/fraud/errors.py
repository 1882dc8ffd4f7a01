"""The fraud context's refusals, each with the stable code the API answers with."""

from __future__ import annotations

from fintech.errors import Conflict, NotFound, ValidationFailed


class NotInReview(Conflict):
    code = "transfer_not_in_review"
    title = "The transfer is not held for review"


class ReviewAlreadyDecided(Conflict):
    code = "review_already_decided"
    title = "The review has already been decided"


class InvalidRuleParameters(ValidationFailed):
    code = "invalid_rule_parameters"
    title = "The rule cannot run with these parameters"


class UnknownRule(ValidationFailed):
    code = "unknown_rule"
    title = "No such fraud rule"


class DenyListDuplicate(Conflict):
    code = "deny_list_duplicate"
    title = "This destination is already on the deny list"


class DenyListEntryNotFound(NotFound):
    code = "deny_list_entry_not_found"
    title = "No such deny-list entry"
