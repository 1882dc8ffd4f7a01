"""Mints an access token from the embedded dev issuer, for trying the API without an identity provider."""

from __future__ import annotations

import uuid
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fintech.auth.scopes import KNOWN_SCOPES
from fintech.auth.tokens import issue_dev_token


class Command(BaseCommand):
    help = "Print a signed access token from the dev issuer (only when OIDC_ISSUER is not set)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--sub", required=True, help="subject: the caller's id")
        parser.add_argument("--scopes", required=True, help='space-separated, e.g. "customers:read accounts:read"')
        parser.add_argument("--customer", default=None, help="UUID of the customer this token is limited to")
        parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.OIDC_ISSUER:
            raise CommandError(f"OIDC_ISSUER is set: tokens come from {settings.OIDC_ISSUER}, not the dev issuer")
        subject: str = options["sub"].strip()
        if not subject:
            raise CommandError("--sub must not be empty")
        scopes: list[str] = options["scopes"].split()
        unknown = sorted(set(scopes) - KNOWN_SCOPES)
        if unknown:
            raise CommandError(f"unknown scope(s): {' '.join(unknown)}; known scopes: {' '.join(sorted(KNOWN_SCOPES))}")
        customer_id: uuid.UUID | None = None
        if options["customer"] is not None:
            try:
                customer_id = uuid.UUID(options["customer"])
            except ValueError as exc:
                raise CommandError(f"--customer must be a UUID, not {options['customer']!r}") from exc
        ttl: int = options["ttl"]
        if ttl <= 0:
            raise CommandError("--ttl must be a positive number of seconds")
        token = issue_dev_token(subject=subject, scopes=scopes, customer_id=customer_id, ttl_seconds=ttl)
        self.stdout.write(token)
