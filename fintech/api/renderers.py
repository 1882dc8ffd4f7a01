from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer

from fintech.api.problems import PROBLEM_CONTENT_TYPE


class BankJSONRenderer(JSONRenderer):
    """JSON, except that error bodies go out as `application/problem+json`."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        response = (renderer_context or {}).get("response")
        if response is not None and response.status_code >= 400 and isinstance(data, dict) and "code" in data:
            response["Content-Type"] = PROBLEM_CONTENT_TYPE
        rendered: bytes = super().render(data, accepted_media_type, renderer_context)
        return rendered
