"""Opening cases from study_received, updates, report statuses, assignment modes."""

from __future__ import annotations

import pytest
from django.utils import timezone

from archive.arrivals import dispatch_arrival
from archive.models import Instance, Series, StudyArrival
from worklist import services
from worklist.models import AssignmentMode, Case, CaseStatus, GroupSettings, Priority, RoutingRule

from .conftest import make_study

pytestmark = pytest.mark.django_db


def _arrive(study):
    arrival = StudyArrival.objects.create(study=study, reason="association_end", instance_count=1)
    dispatch_arrival(arrival.pk)


def test_study_received_opens_one_case_and_more_images_update_it(world):
    study = make_study(world.riverside)
    _arrive(study)
    _arrive(study)  # more images for the same study, and a re-driven event
    assert Case.objects.filter(study=study).count() == 1
    case = Case.objects.get(study=study)
    assert case.status == CaseStatus.NEW and case.reading_group == world.northstar


def _instance(study, source: str) -> Instance:
    """An index row received now (the flag logic reads the index, not the files)."""
    series, _ = Series.objects.get_or_create(
        study=study,
        series_instance_uid=f"{study.study_instance_uid}.1",
        defaults={"modality": "CT"},
    )
    n = Instance.objects.count() + 1
    return Instance.objects.create(
        series=series,
        sop_instance_uid=f"{series.series_instance_uid}.{n}",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        size=1,
        sha256="0" * 64,
        storage_key=f"test/{study.pk}/{n}",
        source=source,
        received_at=timezone.now(),
    )


def test_images_after_signing_flag_the_case(world):
    study = make_study(world.riverside)
    case = services.open_case(study.pk)
    services.set_report_status(case.pk, CaseStatus.PRELIMINARY)
    services.set_report_status(case.pk, CaseStatus.FINAL)
    _instance(study, "reports")  # the report's own PDF and SR, stored as it is signed
    _arrive(study)
    case.refresh_from_db()
    assert not case.arrived_after_signed
    _instance(study, "RIVERSIDE")  # a real late image from the hospital
    _arrive(study)
    case.refresh_from_db()
    assert case.arrived_after_signed and case.status == CaseStatus.FINAL
    assert case.preliminary_at and case.final_at


def test_assignment_refuses_ineligible_readers(world):
    case = services.open_case(make_study(world.lakeview).pk)
    with pytest.raises(services.WorklistError) as refused:
        services.assign_case(case.pk, world.reader2, by=world.scheduler)
    assert refused.value.code == "ineligible"
    assert "no licence in PA" in refused.value.message
    with pytest.raises(services.WorklistError) as refused:
        services.assign_case(case.pk, world.other_reader, by=world.scheduler)
    assert refused.value.code == "not_reader"
    assert services.assign_case(case.pk, world.reader, by=world.scheduler).assignee == world.reader


def test_auto_assignment_picks_least_weighted_load(world):
    GroupSettings.objects.create(reading_group=world.northstar, assignment_mode=AssignmentMode.AUTO)
    RoutingRule.objects.create(name="MR stat", modality="MR", priority=Priority.STAT)
    first = services.open_case(make_study(world.riverside, "MR").pk)  # STAT: weight 3
    second = services.open_case(make_study(world.riverside).pk)
    assert {first.pk, second.pk} == set(Case.objects.values_list("pk", flat=True))
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.assignee is not None and second.assignee is not None
    assert first.assignee != second.assignee  # the STAT load went to one, the next to the other


def test_auto_assignment_is_audited_as_the_system_like_manual_assignment(world):
    """Every assignment writes case.assign. A scheduler's names the scheduler; auto-assignment
    names no person: the audit service's way to record the system as the actor (as for opening
    a case), which the DICOM audit message exports with the application as the requestor."""
    from audit.exporting import audit_message
    from audit.models import Action, AuditEvent

    GroupSettings.objects.create(reading_group=world.northstar, assignment_mode=AssignmentMode.AUTO)
    case = services.open_case(make_study(world.riverside).pk)
    case.refresh_from_db()
    assert case.assignee == world.reader  # equal loads: the first by username
    automatic = AuditEvent.objects.get(action=Action.CASE_ASSIGN, study=case.study)
    assert (automatic.user, automatic.username, automatic.role) == (None, "", "")
    assert automatic.detail == {
        "case": case.pk,
        "assignee": "reader",
        "previous": None,
        "by": "auto-assignment",
    }
    participants = audit_message(automatic).findall("ActiveParticipant")
    assert [p.get("UserIsRequestor") for p in participants] == ["true"]  # the application
    services.assign_case(case.pk, world.reader2, by=world.scheduler)
    manual = AuditEvent.objects.filter(action=Action.CASE_ASSIGN).exclude(pk=automatic.pk).get()
    assert manual.user == world.scheduler and manual.study == case.study
    assert manual.detail == {"case": case.pk, "assignee": "reader2", "previous": world.reader.pk}


def test_next_case_hands_out_the_most_urgent_eligible_case(world):
    GroupSettings.objects.create(
        reading_group=world.northstar, assignment_mode=AssignmentMode.NEXT_CASE
    )
    RoutingRule.objects.create(name="MR stat", modality="MR", priority=Priority.STAT)
    routine = services.open_case(make_study(world.riverside).pk)
    stat_lakeview = services.open_case(make_study(world.lakeview, "MR").pk)
    stat_riverside = services.open_case(make_study(world.riverside, "MR").pk)
    # reader2 is not licensed in PA: the Lakeview STAT is skipped for them.
    got = services.next_case(world.reader2)
    assert got.pk == stat_riverside.pk and got.lock_holder == world.reader2
    assert services.next_case(world.reader).pk == stat_lakeview.pk
    assert services.next_case(world.reader).pk == routine.pk
    assert services.next_case(world.reader) is None
    # No cherry-picking in a next-case group.
    other = services.open_case(make_study(world.riverside).pk)
    with pytest.raises(services.WorklistError) as refused:
        services.take_lock(other.pk, world.reader)
    assert refused.value.code == "queue"


def test_bulk_assign_reports_each_case(world):
    a = services.open_case(make_study(world.riverside).pk)
    b = services.open_case(make_study(world.lakeview).pk)
    results = services.bulk_assign([a.pk, b.pk], world.reader2, world.scheduler)
    assert results[a.pk] == "ok" and "no licence in PA" in results[b.pk]


def test_cancel_and_report_statuses(world):
    case = services.open_case(make_study(world.riverside).pk)
    with pytest.raises(services.WorklistError):
        services.set_report_status(case.pk, "signed")
    services.cancel_case(case.pk, world.scheduler)
    case.refresh_from_db()
    assert case.status == CaseStatus.CANCELLED and case.cancelled_at
    with pytest.raises(services.WorklistError) as refused:
        services.assign_case(case.pk, world.reader, by=world.scheduler)
    assert refused.value.status == 409


def test_merge_a_second_study_into_a_case(world):
    from archive.models import Study

    first = make_study(world.riverside)
    case = services.open_case(first.pk)
    second = Study.objects.create(
        study_instance_uid=first.study_instance_uid + ".2",
        organization=world.riverside,
        patient_record=first.patient_record,
        first_received_at=first.first_received_at,
        last_received_at=first.last_received_at,
    )
    second_case = services.open_case(second.pk)
    services.merge_study(case.pk, second.pk, world.scheduler)
    assert list(case.merged_studies.all()) == [second]
    second_case.refresh_from_db()
    assert second_case.status == CaseStatus.CANCELLED
    stranger = make_study(world.riverside)
    with pytest.raises(services.WorklistError) as refused:
        services.merge_study(case.pk, stranger.pk, world.scheduler)
    assert refused.value.code == "mismatch"
