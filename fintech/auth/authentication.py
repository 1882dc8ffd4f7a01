"""DRF authentication by `Authorization: Bearer <JWT>` (RFC 6750)."""

from __future__ import annotations

from rest_framework import status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.request import Request

from fintech.auth.keys import KeySourceUnavailable
from fintech.auth.principal import Principal
from fintech.auth.tokens import InvalidToken, default_validator

REALM = "fintech"


class IdentityProviderUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The identity provider's keys cannot be fetched; try again shortly."
    default_code = "identity_provider_unavailable"


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Principal, str] | None:
        header = request.META.get("HTTP_AUTHORIZATION")
        if header is None:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise AuthenticationFailed("Authorization header must be 'Bearer <token>'", code="invalid_token")
        token = parts[1]
        try:
            principal = default_validator().validate(token)
        except InvalidToken as exc:
            raise AuthenticationFailed(f"Invalid bearer token: {exc.reason}", code="invalid_token") from exc
        except KeySourceUnavailable as exc:
            raise IdentityProviderUnavailable() from exc
        return principal, token

    def authenticate_header(self, request: Request) -> str:
        # Without a challenge DRF would answer anonymous requests with 403 instead of 401.
        return f'Bearer realm="{REALM}"'
