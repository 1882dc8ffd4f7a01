"""The published schemas and the publishers' event classes say the same thing.

Schemas allow additional properties so that a consumer holding an older copy of a version
keeps accepting events that gained an optional field; this test is what stops a publisher
from drifting: every field an event class publishes is in its schema, and every field the
schema requires is one the class publishes."""

import dataclasses
import importlib

import pytest
from django.apps import apps

from fintech.events import DomainEvent, schema_for
from fintech.events.registry import EventSchemaError, known_types, validate


def event_classes() -> list[type[DomainEvent]]:
    for config in apps.get_app_configs():
        if config.name.startswith("apps."):
            try:
                importlib.import_module(f"{config.name}.events")
            except ModuleNotFoundError:
                continue
    found: list[type[DomainEvent]] = []
    pending = list(DomainEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "event_type" in vars(cls):
            found.append(cls)
    return sorted(found, key=lambda cls: cls.event_type)


def test_every_published_event_type_has_a_schema():
    assert {cls.event_type for cls in event_classes()} <= set(known_types())


@pytest.mark.parametrize("event_class", event_classes(), ids=lambda cls: cls.event_type)
def test_the_event_class_and_its_schema_agree(event_class):
    schema = schema_for(event_class.event_type, event_class.version)
    fields = {field.name for field in dataclasses.fields(event_class)}
    assert fields == set(schema["properties"]), "publish exactly the schema's properties"
    assert set(schema["required"]) <= fields


def test_a_payload_missing_a_required_field_is_refused():
    with pytest.raises(EventSchemaError):
        validate("customer.verified", 1, {"customer_id": "00000000-0000-0000-0000-000000000001"})


def test_an_unknown_extra_field_is_accepted_by_consumers():
    validate(
        "customer.verified",
        1,
        {
            "customer_id": "00000000-0000-0000-0000-000000000001",
            "reviewed_by": "kyc",
            "verified_at": "2026-01-01T00:00:00Z",
            "added_later": True,
        },
    )
