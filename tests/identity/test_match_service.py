"""The matcher in the database: records arriving by DICOM are indexed by blocking keys and
linked, queued for review or kept apart, with the evidence recorded; stewards' decisions are
final; demographics changes keep their history."""

from __future__ import annotations

from django.db import transaction

from archive import services as archive
from archive.dicomfile import split_part10
from identity import services
from identity.models import BlockingKey, LinkEvent, PairDecision, PatientRecord, RecordHistory
from tests.dicomweb.conftest import part10


def arrive(org, match: bool = True, **attributes) -> PatientRecord:
    """One CT object for a child, through the real ingest. Matching runs after commit as a
    task (a worker process in the services run, which cannot see this test's transaction), so
    the test runs the same service call here."""
    ts, dataset = split_part10(part10("CT_small.dcm", **attributes))
    with transaction.atomic():
        outcome = archive.ingest_instance(dataset, ts, archive.IngestSource(org, "tests"))
    assert outcome.accepted, outcome
    record = PatientRecord.objects.get(organization=org, patient_id=attributes["PatientID"])
    if match:
        services.match_record(record.pk)
    return record


MIA = {
    "PatientName": "CARTER^MIA^ROSE",
    "PatientBirthDate": "20190314",
    "PatientSex": "F",
    "PatientMotherBirthName": "NGUYEN^LINH",
    "PatientTelephoneNumbers": "(404) 555-0134",
    "PatientAddress": "12 Elm St, Athens GA 30601",
}


def test_same_child_at_two_hospitals_is_linked_with_evidence(riverside, lakeview):
    a = arrive(riverside, PatientID="RCH-1", **MIA)
    b = arrive(lakeview, PatientID="LV-9", **{**MIA, "PatientName": "Carter^Mia"})
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.person_id == b.person_id
    assert not a.match_pending and not b.match_pending
    decision = PairDecision.objects.get()
    assert decision.status == PairDecision.Status.AUTO_LINKED
    fields = {e["field"] for e in decision.evidence}
    assert {"birth_date", "sex"} <= fields
    event = LinkEvent.objects.get()
    assert event.automatic and event.decision == decision
    assert BlockingKey.objects.filter(record=b).exists()


def test_twins_are_not_linked(riverside, lakeview):
    twin = {**MIA, "PatientName": "CARTER^AVA"}
    a = arrive(riverside, PatientID="RCH-1", **MIA)
    b = arrive(lakeview, PatientID="LV-2", **twin)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.person_id != b.person_id
    decision = PairDecision.objects.filter(record_a=min(a.pk, b.pk)).first()
    assert decision is None or decision.status != PairDecision.Status.AUTO_LINKED


def test_a_kept_apart_pair_never_returns(riverside, lakeview, django_user_model):
    steward = django_user_model.objects.create_user("s")
    a = arrive(riverside, PatientID="RCH-1", **MIA)
    b = arrive(lakeview, PatientID="LV-9", **MIA)
    event = LinkEvent.objects.get()
    services.unmerge(event, steward)
    services.match_record(b.pk)  # matching again, e.g. after a demographics update
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.person_id != b.person_id
    assert PairDecision.objects.get().status == PairDecision.Status.KEPT_APART


def test_demographic_changes_keep_history_and_rematch(riverside):
    record = arrive(riverside, PatientID="RCH-7", PatientName="BABY GIRL^CARTER")
    arrive(riverside, PatientID="RCH-7", PatientName="CARTER^MIA")
    record.refresh_from_db()
    assert record.name == "CARTER^MIA" and record.given_name == "MIA"
    assert record.matched_at is not None and not record.match_pending
    (history,) = RecordHistory.objects.filter(record=record)
    assert history.changes["name"] == ["BABY GIRL^CARTER", "CARTER^MIA"]
    # An object without a name never erases the known one.
    arrive(riverside, match=False, PatientID="RCH-7", PatientName="")
    record.refresh_from_db()
    assert record.name == "CARTER^MIA"
    assert not record.match_pending  # nothing changed, nothing to match again


def test_sweep_matches_records_whose_task_was_lost(riverside, lakeview):
    # As if the worker died before matching.
    a = arrive(riverside, match=False, PatientID="RCH-1", **MIA)
    b = arrive(lakeview, match=False, PatientID="LV-9", **MIA)
    assert PatientRecord.objects.filter(match_pending=True).count() == 2
    assert services.match_pending_records() == 2
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.person_id == b.person_id
    assert services.match_pending_records() == 0


def test_an_automatic_link_is_audited_as_the_matcher(riverside, lakeview):
    """A link the matcher makes moves a child's records like a steward's link does, so it
    leaves the same identity.link trace: no user (the system acted, as the audit trail
    records system actions), the pair, its score and the LinkEvent that can undo it."""
    from audit.exporting import audit_message
    from audit.models import Action, AuditEvent

    a = arrive(riverside, PatientID="RCH-1", **MIA)
    b = arrive(lakeview, PatientID="LV-9", **{**MIA, "PatientName": "Carter^Mia"})
    event = LinkEvent.objects.get()
    decision = PairDecision.objects.get()
    audited = AuditEvent.objects.filter(action=Action.IDENTITY_LINK).order_by("pk")
    assert {e.patient_record_id for e in audited} == {a.pk, b.pk}
    for row in audited:
        assert row.user_id is None and row.username == ""
        assert row.detail == {
            "automatic": True,
            "pair": decision.pk,
            "score": decision.score,
            "event": event.pk,
        }
    # Exported, the application is the requestor and no person is named.
    message = audit_message(audited[0])
    (participant,) = message.findall("ActiveParticipant")
    assert participant.get("UserIsRequestor") == "true"
    assert participant.get("AlternativeUserID") == "readingroom"
