"""What the back office's admin pages share."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class ReadOnly:
    """A mixin for the admin of rows that change only through their services (and their events):
    the money, and what moves it, is never edited by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
