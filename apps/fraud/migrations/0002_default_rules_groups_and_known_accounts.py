"""The rules a fresh database has (the issue's defaults, written out here so that a later change of
the code's defaults never rewrites history), the back-office groups, and the accounts opened
before the fraud context existed."""

import uuid

from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.utils import timezone

DEFAULT_RULES = {
    "deny_list": {"score": 100},
    "amount": {"threshold": 5_000_000, "score": 50},
    "new_account": {"max_age_days": 7, "threshold": 1_000_000, "score": 40},
    "new_beneficiary": {"threshold": 500_000, "score": 30},
    "velocity": {
        "max_count": 60,
        "count_window_minutes": 10,
        "max_amount": 10_000_000,
        "amount_window_minutes": 60,
        "score": 60,
    },
    "night_time": {
        "starts": "20:00",
        "ends": "06:00",
        "time_zone": "America/Sao_Paulo",
        "threshold": 100_000,
        "score": 20,
    },
    "round_trip": {"window_minutes": 10, "threshold": 100_000, "score": 50},
}

GROUPS = {
    # Decides the review queue; sees the rules and the deny list.
    "fraud-analyst": [
        "view_alert",
        "decide_review",
        "view_screening",
        "view_firedrule",
        "view_fraudrule",
        "view_fraudruleversion",
        "view_denylistentry",
    ],
    # Tunes the rules and keeps the deny list, besides what an analyst does.
    "fraud-admin": [
        "view_alert",
        "decide_review",
        "view_screening",
        "view_firedrule",
        "view_fraudrule",
        "change_fraudrule",
        "view_fraudruleversion",
        "view_denylistentry",
        "add_denylistentry",
        "delete_denylistentry",
    ],
}


def seed_rules(apps, schema_editor):
    FraudRule = apps.get_model("fraud", "FraudRule")
    FraudRuleVersion = apps.get_model("fraud", "FraudRuleVersion")
    RuleBook = apps.get_model("fraud", "RuleBook")
    now = timezone.now()
    for name, parameters in DEFAULT_RULES.items():
        FraudRule.objects.create(
            name=name, enabled=True, parameters=parameters, version=1, updated_by="migration", updated_at=now
        )
        FraudRuleVersion.objects.create(
            rule=name, version=1, enabled=True, parameters=parameters, changed_by="migration", changed_at=now
        )
    RuleBook.objects.create(id=1, revision=uuid.uuid4(), changed_at=now)


def seed_groups(apps, schema_editor):
    # Permissions are made after all migrations ran; make the fraud app's now, to grant them.
    config = apps.get_app_config("fraud")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="fraud", codename__in=codenames))


def known_accounts(apps, schema_editor):
    # A one-off read of the accounts context's table, at install time: the ages of the accounts
    # opened before this context listened to account.created (afterwards the events tell it).
    BankAccount = apps.get_model("accounts", "BankAccount")
    MonitoredAccount = apps.get_model("fraud", "MonitoredAccount")
    rows = BankAccount.objects.values_list("id", "created_at").iterator(chunk_size=2_000)
    batch = []
    for account_id, created_at in rows:
        batch.append(MonitoredAccount(account_id=account_id, opened_at=created_at))
        if len(batch) == 2_000:
            MonitoredAccount.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    MonitoredAccount.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("fraud", "0001_initial"),
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(seed_rules, migrations.RunPython.noop),
        migrations.RunPython(seed_groups, migrations.RunPython.noop),
        migrations.RunPython(known_accounts, migrations.RunPython.noop),
    ]
