"""Back-office login: the Django admin signs staff in through the identity provider (Keycloak),
their realm roles mapped onto Django's staff, superuser and groups; active only with
OIDC_ISSUER. Who gets in with what, and why: docs/architecture.md, "Identity"."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, include, path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from mozilla_django_oidc.auth import OIDCAuthenticationBackend  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

ROLES_CLAIM = "realm_roles"
ROLE_STAFF = "staff"
ROLE_KYC_REVIEWER = "kyc-reviewer"
ROLE_ADMIN = "admin"
BACK_OFFICE_ROLES = frozenset({ROLE_STAFF, ROLE_KYC_REVIEWER, ROLE_ADMIN})
GROUP_FOR_ROLE: Mapping[str, str] = {ROLE_STAFF: "back-office", ROLE_KYC_REVIEWER: "kyc"}
USERNAME_PREFIX = "oidc-"


def realm_roles(claims: Mapping[str, Any]) -> frozenset[str]:
    """The realm roles in the claims: `realm_roles` (our mapper) or Keycloak's `realm_access.roles`."""
    roles = claims.get(ROLES_CLAIM)
    if roles is None:
        realm_access = claims.get("realm_access")
        roles = realm_access.get("roles") if isinstance(realm_access, Mapping) else None
    if not isinstance(roles, list):
        return frozenset()
    return frozenset(role for role in roles if isinstance(role, str))


def username_for(subject: str) -> str:
    return f"{USERNAME_PREFIX}{subject}"


class BackOfficeOIDCBackend(OIDCAuthenticationBackend):
    """Signs in back-office users from the identity provider and keeps their Django flags and groups in step."""

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        # The library checks the signature, expiry and nonce, not who issued the token for whom.
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        if payload.get("iss") != settings.OIDC_ISSUER:
            raise SuspiciousOperation("ID token from an unexpected issuer")
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("ID token for another client")
        typ = payload.get("typ")
        if typ is not None and typ != "ID":
            raise SuspiciousOperation("not an ID token")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        userinfo: dict[str, Any] = super().get_userinfo(access_token, id_token, payload)
        # OpenID Connect Core 5.3.2: a userinfo response about another subject must not be used.
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("userinfo is about another subject than the ID token")
        return userinfo

    def verify_claims(self, claims: Mapping[str, Any]) -> bool:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            return False
        if not realm_roles(claims) & BACK_OFFICE_ROLES:
            logger.info("back-office login refused: subject %s holds no back-office role", subject)
            return False
        return True

    def filter_users_by_claims(self, claims: Mapping[str, Any]) -> QuerySet[User]:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            return self.UserModel.objects.none()  # type: ignore[no-any-return]
        return self.UserModel.objects.filter(username=username_for(subject))  # type: ignore[no-any-return]

    def create_user(self, claims: Mapping[str, Any]) -> User:
        user: User = self.UserModel(username=username_for(str(claims["sub"])))
        # Only the provider can sign this account in: it has no password of its own.
        user.set_unusable_password()
        return self.apply_claims(user, claims)

    def update_user(self, user: User, claims: Mapping[str, Any]) -> User:
        return self.apply_claims(user, claims)

    def apply_claims(self, user: User, claims: Mapping[str, Any]) -> User:
        """Copies the profile and maps the realm roles onto the user; saves it. is_active is left alone."""
        roles = realm_roles(claims)
        user.email = _text(claims.get("email"), 254)
        user.first_name = _text(claims.get("given_name"), 150)
        user.last_name = _text(claims.get("family_name"), 150)
        user.is_superuser = ROLE_ADMIN in roles
        user.is_staff = user.is_superuser or ROLE_STAFF in roles
        with transaction.atomic():
            user.save()
            _sync_groups(user, {GROUP_FOR_ROLE[role] for role in roles if role in GROUP_FOR_ROLE})
        logger.info(
            "back-office login: %s staff=%s superuser=%s roles=%s",
            user.username,
            user.is_staff,
            user.is_superuser,
            ",".join(sorted(roles & BACK_OFFICE_ROLES)),
        )
        return user


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _sync_groups(user: User, wanted: Iterable[str]) -> None:
    """Adds the user to the mapped groups it should be in and removes it from the others."""
    wanted = set(wanted)
    for name in sorted(set(GROUP_FOR_ROLE.values())):
        group, _ = Group.objects.get_or_create(name=name)
        if name in wanted:
            user.groups.add(group)
        else:
            user.groups.remove(group)


def provider_logout_url(request: HttpRequest) -> str:
    """OIDC_OP_LOGOUT_URL_METHOD: /oidc/logout/ (POST) also ends the provider's session."""
    params = {"client_id": settings.OIDC_RP_CLIENT_ID}
    id_token = request.session.get("oidc_id_token")
    if id_token:
        params["id_token_hint"] = id_token
    params["post_logout_redirect_uri"] = request.build_absolute_uri(reverse("admin:index"))
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{urlencode(params)}"


def admin_login(request: HttpRequest) -> HttpResponse:
    """/admin/login/: off to the identity provider; `?local=1` shows Django's password form instead."""
    if request.GET.get("local"):
        return admin.site.login(request)
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("admin:index")
    if request.user.is_active and request.user.is_staff:
        return HttpResponseRedirect(next_url)
    return HttpResponseRedirect(f"{reverse('oidc_authentication_init')}?{urlencode({'next': next_url})}")


def login_failed(request: HttpRequest) -> HttpResponse:
    """LOGIN_REDIRECT_URL_FAILURE: the provider signed the user in, but the back office does not admit them."""
    return HttpResponseForbidden(
        "This account may not use the back office (it needs the realm role staff, kyc-reviewer or admin).",
        content_type="text/plain; charset=utf-8",
    )


# Prepended to config/urls.py's patterns when OIDC_ISSUER is set (ahead of admin.site.urls, whose
# login view this one replaces).
urlpatterns: list[URLPattern | URLResolver] = [
    path("admin/login/", admin_login, name="backoffice_login"),
    path("oidc/failed/", login_failed, name="oidc_login_failed"),
    path("oidc/", include("mozilla_django_oidc.urls")),
]
