"""The JSON parser of the API: the standard library's decoder, with limits that keep bad input
a 400 and never a 500.

- Nesting: a body nested deeper than `MAX_DEPTH` is refused (`malformed_request`). A 2 KB body
  of a thousand nested arrays parses, but every later walk of it (the idempotency fingerprint,
  the serializers) recursed past Python's limit: a 500 on every POST.
- Huge numbers: an integer literal longer than `MAX_INTEGER_DIGITS` is read as a number larger
  than any the API accepts, so the field's own rule answers (`amount_too_large`, ...) instead of
  Python's "Exceeds the limit for integer string conversion" leaking into the answer.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

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
        return data
