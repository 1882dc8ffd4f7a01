"""The JSON parser of the API: the standard library's decoder, with limits that keep bad input
a 400 and never a 500.

- Nesting: a body nested deeper than `MAX_DEPTH` is refused (`malformed_request`). A 2 KB body
  of a thousand nested arrays parses, but every later walk of it (the idempotency fingerprint,
  the serializers) recursed past Python's limit: a 500 on every POST.
- Huge numbers: an integer literal longer than `MAX_INTEGER_DIGITS` is read as a number larger
  than any the API accepts, so the field's own rule answers (`amount_too_large`, ...) instead of
  Python's "Exceeds the limit for integer string conversion" leaking into the answer.
- Not an object: every body of this API is a JSON object, so `false`, `[]`, `1` or `"x"` is
  refused (`malformed_request`). A command whose options are all optional read `false` as "no
  options" and acted. `ReadsTheBody` makes every write parse its body before the view runs, so a
  command that reads none (verify, erase) refuses a malformed one too, and acts not.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from fintech.api.throttling import rate_limited

if TYPE_CHECKING:
    # Only for annotations: rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES).
    from rest_framework.views import APIView

MAX_DEPTH = 32
MAX_INTEGER_DIGITS = 30
OVERSIZED: int = 10**MAX_INTEGER_DIGITS  # larger than any amount or count the API takes


class MalformedRequest(ParseError):
    default_code = "malformed_request"


def _integer(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INTEGER_DIGITS:
        return -OVERSIZED if text[0] == "-" else OVERSIZED
    return int(text)


def depth_of(value: Any, limit: int) -> int:
    """How deep `value` nests (a scalar is 0), walked without recursion; stops past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


class BankJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            data = json.loads(text, parse_int=_integer)
        except RecursionError:
            raise MalformedRequest(f"The JSON body nests deeper than {MAX_DEPTH} levels.") from None
        except ValueError as error:
            raise MalformedRequest(f"The body is not valid JSON: {error.args[0][:200]}") from None
        if depth_of(data, MAX_DEPTH) > MAX_DEPTH:
            raise MalformedRequest(f"The JSON body nests deeper than {MAX_DEPTH} levels.")
        if not isinstance(data, dict):
            raise MalformedRequest(f"The JSON body must be an object, not {type(data).__name__}.")
        return data


class ReadsTheBody(BaseThrottle):
    """Listed after the rate limit in DEFAULT_THROTTLE_CLASSES, the last of the checks DRF runs
    before the view (authentication, scopes, rate limit): a write's body is parsed there, and a
    malformed one refused with 400, whether or not the view reads it. A request the rate limit
    refused is left unparsed (it is answered 429); a malformed one still counted against it."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        if (request.method or "").upper() not in SAFE_METHODS and not rate_limited(request):
            request.data  # noqa: B018 (parsing is the point: the parser raises MalformedRequest)
        return True
