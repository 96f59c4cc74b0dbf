"""The shipped hanging protocols (admins edit or disable them; new rows win by priority)."""

from django.db import migrations

from viewer.hanging_defaults import DEFAULTS, install_defaults


def add(apps, schema_editor):
    install_defaults(apps.get_model("viewer", "HangingProtocol"))


def remove(apps, schema_editor):
    HangingProtocol = apps.get_model("viewer", "HangingProtocol")
    HangingProtocol.objects.filter(name__in=[row["name"] for row in DEFAULTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("viewer", "0001_initial")]
    operations = [migrations.RunPython(add, remove)]
