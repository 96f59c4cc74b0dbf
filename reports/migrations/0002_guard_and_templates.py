"""Immutability triggers (reports.guard) and the shipped templates (reports.catalog)."""

from django.db import migrations

from reports import catalog, guard


def forwards(apps, schema_editor):
    guard.install(schema_editor.connection, apps.get_model("reports", "Report"))
    catalog.install_shipped(apps.get_model("reports", "ReportTemplate"))


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
