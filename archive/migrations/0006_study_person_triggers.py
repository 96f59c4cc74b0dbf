"""Study.person is a copy of its record's person that the database keeps, whatever writes.

Why triggers rather than the identity services updating studies: the access policy trusts this
column to say whose study a row is (a study shown as another child's prior would be a breach),
so no code path may leave it stale: a link, an unlink, an unmerge, an admin's edit, a bulk load,
a person deleted (its records set to NULL), or a test's plain UPDATE. Each trigger writes the
record's current person; a direct write to Study.person is overwritten with it.

PostgreSQL: filing a study reads its record's person FOR SHARE, so a link committing at the same
moment either waits for the study's transaction (and its trigger then updates the committed
study) or is seen by it. SQLite serialises writing transactions, so reading is enough.

A later migration that makes SQLite rebuild archive_study or identity_patientrecord (most
column changes do: copy, drop, rename) drops their triggers with the old table and must create
them again; tests/archive/test_study_person.py fails until it does.
"""

from django.db import migrations

POSTGRESQL = """
CREATE FUNCTION archive_study_person_of_record() RETURNS trigger AS $$
BEGIN
    SELECT person_id INTO NEW.person_id
      FROM identity_patientrecord WHERE id = NEW.patient_record_id FOR SHARE;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER archive_study_person
    BEFORE INSERT OR UPDATE OF patient_record_id, person_id ON archive_study
    FOR EACH ROW EXECUTE FUNCTION archive_study_person_of_record();

CREATE FUNCTION identity_record_person_to_studies() RETURNS trigger AS $$
BEGIN
    UPDATE archive_study SET person_id = NEW.person_id
     WHERE patient_record_id = NEW.id AND person_id IS DISTINCT FROM NEW.person_id;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER identity_record_person
    AFTER UPDATE OF person_id ON identity_patientrecord
    FOR EACH ROW WHEN (OLD.person_id IS DISTINCT FROM NEW.person_id)
    EXECUTE FUNCTION identity_record_person_to_studies();
"""

POSTGRESQL_DROP = """
DROP TRIGGER identity_record_person ON identity_patientrecord;
DROP FUNCTION identity_record_person_to_studies();
DROP TRIGGER archive_study_person ON archive_study;
DROP FUNCTION archive_study_person_of_record();
"""

RECORD_PERSON = "(SELECT person_id FROM identity_patientrecord WHERE id = NEW.patient_record_id)"

SQLITE = [
    f"""
CREATE TRIGGER archive_study_person_insert AFTER INSERT ON archive_study
BEGIN
    UPDATE archive_study SET person_id = {RECORD_PERSON} WHERE id = NEW.id;
END
""",
    f"""
CREATE TRIGGER archive_study_person_update
    AFTER UPDATE OF patient_record_id, person_id ON archive_study
BEGIN
    UPDATE archive_study SET person_id = {RECORD_PERSON}
     WHERE id = NEW.id AND person_id IS NOT {RECORD_PERSON};
END
""",
    """
CREATE TRIGGER identity_record_person AFTER UPDATE OF person_id ON identity_patientrecord
    WHEN OLD.person_id IS NOT NEW.person_id
BEGIN
    UPDATE archive_study SET person_id = NEW.person_id WHERE patient_record_id = NEW.id;
END
""",
]

SQLITE_DROP = [
    "DROP TRIGGER identity_record_person",
    "DROP TRIGGER archive_study_person_update",
    "DROP TRIGGER archive_study_person_insert",
]

BACKFILL = """
UPDATE archive_study SET person_id = (
    SELECT person_id FROM identity_patientrecord WHERE id = archive_study.patient_record_id
)
"""


def _run(schema_editor, statements: dict[str, list[str]]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in statements:
        raise RuntimeError(f"Study.person has no triggers for {vendor}")
    for statement in statements[vendor]:
        schema_editor.execute(statement, params=None)


def create(apps, schema_editor) -> None:
    _run(schema_editor, {"postgresql": [POSTGRESQL, BACKFILL], "sqlite": [*SQLITE, BACKFILL]})


def drop(apps, schema_editor) -> None:
    _run(schema_editor, {"postgresql": [POSTGRESQL_DROP], "sqlite": SQLITE_DROP})


class Migration(migrations.Migration):
    dependencies = [
        ("archive", "0005_study_person"),
        ("identity", "0003_matching"),
    ]

    operations = [migrations.RunPython(create, drop)]
