from __future__ import annotations

from typing import ClassVar

from django.urls import path
from drf_spectacular.generators import SchemaGenerator
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class LedgerView(APIView):
    required_scopes: ClassVar[dict[str, tuple[str, ...]]] = {"GET": ("ledger:read",)}

    def get(self, request: Request) -> Response:
        return Response({})


def test_schema_describes_the_bearer_scheme_on_every_operation() -> None:
    schema = SchemaGenerator(patterns=[path("api/v1/ledger", LedgerView.as_view())]).get_schema(public=True)

    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert {"bearerAuth": []} in schema["paths"]["/api/v1/ledger"]["get"]["security"]
