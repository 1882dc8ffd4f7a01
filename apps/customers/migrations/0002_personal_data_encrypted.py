"""Personal data encrypted at rest: document, e-mail and birth date become AES-GCM tokens, the
document's uniqueness moves to its blind index, and customers gain an optional phone and
`erased_at`.

The existing plaintext is converted in place: the columns first become plain nullable text,
RunPython writes the token (and the blind index) of each row's value, then the columns become
the encrypted fields, which read only tokens. Backwards, the tokens are decrypted again.
"""

from django.db import migrations, models

import fintech.crypto.fields

_ENCRYPTED = ("document", "email", "birth_date")
_CHUNK = 500


def _purpose(field: str) -> str:
    return f"customers.customer.{field}"  # what fintech.crypto.fields binds each column to


def encrypt_existing(apps, schema_editor):
    from fintech.crypto.blind_index import blind_index
    from fintech.crypto.cipher import encrypt

    Customer = apps.get_model("customers", "Customer")
    db = schema_editor.connection.alias
    pks = list(Customer.objects.using(db).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), _CHUNK):
        rows = Customer.objects.using(db).filter(pk__in=pks[start : start + _CHUNK]).values("pk", *_ENCRYPTED)
        for row in rows:
            changes = {
                field: encrypt(str(row[field]), purpose=_purpose(field))
                for field in _ENCRYPTED
                if row[field] is not None
            }
            if row["document"] is not None:
                changes["document_index"] = blind_index(row["document"], purpose=_purpose("document"))
            Customer.objects.using(db).filter(pk=row["pk"]).update(**changes)


def decrypt_existing(apps, schema_editor):
    from fintech.crypto.cipher import decrypt

    Customer = apps.get_model("customers", "Customer")
    db = schema_editor.connection.alias
    for row in Customer.objects.using(db).values("pk", *_ENCRYPTED).iterator(chunk_size=_CHUNK):
        changes = {
            field: decrypt(row[field], purpose=_purpose(field)) for field in _ENCRYPTED if row[field] is not None
        }
        Customer.objects.using(db).filter(pk=row["pk"]).update(**changes)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="customer", name="one_customer_per_document"),
        migrations.AddField(
            model_name="customer",
            name="document_index",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="Blind index (HMAC) of the document's digits: lookups and uniqueness.",
                max_length=64,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="customer",
            name="erased_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="customer",
            name="phone",
            field=fintech.crypto.fields.EncryptedTextField(blank=True, help_text="E.164, optional.", null=True),
        ),
        # Plain text first, so the conversion below reads the plaintext and writes tokens as they are.
        migrations.AlterField(model_name="customer", name="document", field=models.TextField(null=True)),
        migrations.AlterField(model_name="customer", name="email", field=models.TextField(null=True)),
        migrations.AlterField(model_name="customer", name="birth_date", field=models.TextField(null=True)),
        migrations.RunPython(encrypt_existing, decrypt_existing, elidable=False),
        migrations.AlterField(
            model_name="customer",
            name="document",
            field=fintech.crypto.fields.EncryptedTextField(
                blank=True, help_text="Bare digits of the CPF or CNPJ.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="email",
            field=fintech.crypto.fields.EncryptedTextField(
                blank=True, help_text="Lower-cased; empty only once erased.", null=True
            ),
        ),
        migrations.AlterField(
            model_name="customer",
            name="birth_date",
            field=fintech.crypto.fields.EncryptedDateField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.UniqueConstraint(fields=("document_index",), name="one_customer_per_document"),
        ),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("erased_at__isnull", False),
                    models.Q(("document__isnull", False), ("document_index__isnull", False), ("email__isnull", False)),
                    _connector="OR",
                ),
                name="customer_identified_unless_erased",
            ),
        ),
        migrations.AddConstraint(
            model_name="customer",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("erased_at__isnull", True),
                    models.Q(
                        ("birth_date__isnull", True),
                        ("document__isnull", True),
                        ("document_index__isnull", True),
                        ("email__isnull", True),
                        ("phone__isnull", True),
                    ),
                    _connector="OR",
                ),
                name="erased_customer_keeps_no_personal_data",
            ),
        ),
    ]
