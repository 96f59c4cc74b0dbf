from django.db import migrations, models


def fill_search_names(apps, schema_editor):
    PatientRecord = apps.get_model("identity", "PatientRecord")
    for record in PatientRecord.objects.only("pk", "name").iterator():
        # Same rule as identity.models.search_name_of (historical models have no methods).
        search = record.name.split("=")[0].rstrip("^ ").upper()
        PatientRecord.objects.filter(pk=record.pk).update(search_name=search)


class Migration(migrations.Migration):
    dependencies = [("identity", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="patientrecord",
            name="search_name",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=324),
        ),
        migrations.AlterField(
            model_name="patientrecord",
            name="patient_id",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.RunPython(fill_search_names, migrations.RunPython.noop),
    ]
