"""Django signal receivers (not event-bus handlers) that write the back office's audit records:
the admin's edits (from its own log, LogEntry, with the changed fields before and after) and
the admin's logins, failed logins and logouts.

An admin edit's record is appended inside the admin's own transaction, so the edit and its
record commit together. Values of encrypted columns, blind indexes and passwords are never
copied into the trail: the record says that they changed, not what they hold.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.admin.models import LogEntry
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest

from apps.audit import origin as origins
from apps.audit.models import ActorType, AuditRecord
from apps.audit.services import audit_append
from fintech.crypto.fields import EncryptedField

ENCRYPTED = "[encrypted]"
REDACTED = "[redacted]"

State = dict[str, Any]


@receiver(pre_save, dispatch_uid="audit.capture_before_state")
def capture_before_state(sender: type[models.Model], instance: models.Model, raw: bool = False, **kwargs: Any) -> None:
    """While the admin saves an object, keep its fields as the database had them before."""
    origin = origins.current()
    if origin is None or not origin.capture_before_states or raw or instance._state.adding:
        return
    if sender in (AuditRecord, LogEntry) or instance.pk is None:
        return
    key = (sender._meta.label_lower, str(instance.pk))
    if key in origin.before_states:
        return  # saved twice in one request: the state before the first save is the one before the edit
    stored = sender._base_manager.using(kwargs.get("using")).filter(pk=instance.pk).first()
    if stored is not None:
        origin.before_states[key] = _state_of(stored)


@receiver(post_save, sender=LogEntry, dispatch_uid="audit.admin_log_entry")
def record_admin_edit(
    sender: type[LogEntry], instance: LogEntry, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    if not created or raw:
        return
    content_type = cast("ContentType | None", instance.content_type)
    model = content_type.model_class() if content_type is not None else None
    label = f"{content_type.app_label}.{content_type.model}" if content_type is not None else ""
    # The admin logs an addition after the save and a deletion before the delete: the object is there.
    obj = model._base_manager.filter(pk=instance.object_id).first() if model and instance.object_id else None
    state = _state_of(obj) if obj is not None else None
    origin = origins.current()
    before: State | None = None
    after: State | None = None
    if instance.is_addition():
        action, after = "admin.add", _rendered(model, state)
    elif instance.is_deletion():
        action, before = "admin.delete", _rendered(model, state)
    else:
        action = "admin.change"
        previous = origin.before_states.pop((label, str(instance.object_id)), None) if origin else None
        before, after = _changes(model, previous, state)
    audit_append(
        action=action,
        actor=cast("AbstractBaseUser", instance.user).get_username(),
        actor_type=ActorType.ADMIN,
        resource_type=label,
        resource_id=str(instance.object_id or ""),
        before=before,
        after=after,
        details={"object": instance.object_repr, "message": instance.get_change_message()},
        **_origin_fields(None),
    )


@receiver(user_login_failed, dispatch_uid="audit.login_failed")
def record_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Django has already blanked the password in `credentials`; only the name tried is kept.
    audit_append(
        action="auth.failed",
        actor="anonymous",
        actor_type=ActorType.ANONYMOUS,
        reason="invalid_credentials",
        resource_type="admin.login",
        details={"username": str(credentials.get("username") or "")[:150]},
        **_origin_fields(request),
    )


@receiver(user_logged_in, dispatch_uid="audit.logged_in")
def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    audit_append(
        action="auth.login",
        actor=user.get_username(),
        actor_type=ActorType.ADMIN,
        resource_type="admin.login",
        **_origin_fields(request),
    )


@receiver(user_logged_out, dispatch_uid="audit.logged_out")
def record_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is None:
        return  # nobody was logged in: nothing changed
    audit_append(
        action="auth.logout",
        actor=user.get_username(),
        actor_type=ActorType.ADMIN,
        resource_type="admin.login",
        **_origin_fields(request),
    )


def _origin_fields(request: HttpRequest | None) -> origins.OriginFields:
    origin = origins.current() or (origins.origin_of(request) if request is not None else None)
    return origin.as_fields() if origin is not None else origins.NO_ORIGIN


def _state_of(obj: models.Model) -> State:
    """The object's stored fields by attribute name, many-to-many ones as sorted lists of ids."""
    state: State = {field.attname: field.value_from_object(obj) for field in obj._meta.concrete_fields}
    for field in obj._meta.many_to_many:
        state[field.attname] = sorted(str(pk) for pk in getattr(obj, field.attname).values_list("pk", flat=True))
    return state


def _changes(
    model: type[models.Model] | None, before: State | None, after: State | None
) -> tuple[State | None, State | None]:
    """Only the fields an edit changed, as they were and as they are."""
    if before is None or after is None:
        return _rendered(model, before), _rendered(model, after)
    changed = [name for name in after if before.get(name) != after[name]]
    return (
        _rendered(model, {name: before.get(name) for name in changed}),
        _rendered(model, {name: after[name] for name in changed}),
    )


def _rendered(model: type[models.Model] | None, state: State | None) -> State | None:
    if state is None:
        return None
    fields = {field.attname: field for field in model._meta.get_fields() if hasattr(field, "attname")} if model else {}
    return {name: _shown(fields.get(name), name, value) for name, value in state.items()}


def _shown(field: Any, name: str, value: Any) -> Any:
    if isinstance(field, EncryptedField):
        return ENCRYPTED if value is not None else None
    if "password" in name or "secret" in name or name.endswith("_index"):
        return REDACTED if value else value
    return value
