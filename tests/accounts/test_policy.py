"""The access policy, persona by persona: who sees which studies (and priors)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Membership, Organization, Role
from accounts.policy import (
    annotatable_studies,
    can_view_study,
    memberships_read_once,
    visible_studies,
)
from archive.models import Series, Study
from identity.models import PatientRecord, Person
from readingroom import demo


def make_study(org, uid, mrn, person, referring="", modality="CT"):
    record, _ = PatientRecord.objects.get_or_create(
        organization=org, issuer="", patient_id=mrn, defaults={"person": person}
    )
    now = timezone.now()
    study = Study.objects.create(
        study_instance_uid=uid,
        organization=org,
        patient_record=record,
        referring_physician=referring,
        modalities_in_study=modality,
        first_received_at=now,
        last_received_at=now,
    )
    Series.objects.create(series_instance_uid=uid + ".1", study=study, modality=modality)
    return study


@pytest.fixture
def world(db, settings):
    """Demo personas and agreements, Mia at three hospitals, and an outsider facility."""
    settings.REFERRING_SEES_UNREPORTED = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
    demo.create_organisations_and_users()
    orgs = {o.slug: o for o in Organization.objects.all()}
    hillcrest = Organization.objects.create(
        name="Hillcrest Children's",
        slug="hillcrest",
        us_state="OH",
        kind=Organization.Kind.SENDING_FACILITY,
    )
    outsider = get_user_model().objects.create_user("outsider", password="x" * 16)
    Membership.objects.create(user=outsider, organization=hillcrest, role=Role.TECHNOLOGIST)
    mia, other = Person.objects.create(), Person.objects.create()
    studies = {
        "riverside_ct": make_study(
            orgs["riverside"], "1.1", "RCH-1", mia, demo.REFERRING["RIVERSIDE"]
        ),
        "lakeview_mr": make_study(
            orgs["lakeview"],
            "1.2",
            "LV-1",
            Person.objects.create(),
            demo.REFERRING["LAKEVIEW"],
            "MR",
        ),
        "hillcrest_mia": make_study(hillcrest, "1.3", "HC-1", mia),
        "hillcrest_other": make_study(hillcrest, "1.4", "HC-2", other),
    }
    return studies


def visible(username):
    user = get_user_model().objects.get(username=username)
    return set(visible_studies(user).values_list("study_instance_uid", flat=True))


READING_SIDE = {"1.1", "1.2", "1.3"}  # both agreement facilities + Mia's prior at Hillcrest

EXPECTED = {
    "reader": READING_SIDE,
    "reader2": READING_SIDE,
    "scheduler": READING_SIDE,
    "orgadmin": READING_SIDE,
    "tech": {"1.1"},
    "referrer": set(),  # no final reports exist yet
    "referrer2": set(),
    "admin": {"1.1", "1.2", "1.3", "1.4"},
    "outsider": {"1.3", "1.4"},
}


@pytest.mark.parametrize("username", sorted(EXPECTED))
def test_each_persona_sees_exactly_its_studies(world, username):
    assert visible(username) == EXPECTED[username]


def test_priors_follow_identity_links(world):
    """Linking Lakeview's record to Mia brings nothing new to readers (already visible), but
    unlinking Hillcrest's record takes that prior away."""
    assert "1.3" in visible("reader")
    PatientRecord.objects.filter(patient_id="HC-1").update(person=Person.objects.create())
    assert "1.3" not in visible("reader")


def test_a_record_linked_to_no_person_brings_no_priors(world):
    """Priors come through the enterprise person: a record not (or no longer) linked to one
    has none, while the reading side's own studies stay visible directly."""
    PatientRecord.objects.filter(patient_id="HC-1").update(person=None)
    assert visible("reader") == {"1.1", "1.2"}
    PatientRecord.objects.filter(patient_id="RCH-1").update(person=None)
    assert visible("reader") == {"1.1", "1.2"}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan text")
def test_the_prior_probe_reads_the_person_and_organisation_index(world):
    """The probe of each walked study finds the child's other studies and their organisation
    in one index (study_person_org) from the study's own person column, without reading the
    record or the person's other records."""
    sql, params = visible_studies(
        get_user_model().objects.get(username="reader")
    ).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = "\n".join(row[3] for row in cursor.fetchall())
    assert "COVERING INDEX study_person_org (person_id=? AND organization_id=?)" in plan, plan
    assert "identity_patientrecord" not in plan, plan


def test_referring_physicians_see_their_own_patients_when_allowed(world, settings):
    settings.REFERRING_SEES_UNREPORTED = True
    assert visible("referrer") == {"1.1"}
    assert visible("referrer2") == {"1.2"}
    Membership.objects.filter(user__username="referrer").update(provider_ids=["SOMEONE^ELSE"])
    assert visible("referrer") == set()


@pytest.mark.parametrize(
    "status, seen",
    [("draft", set()), ("preliminary", {"1.1"}), ("final", {"1.1"}), ("addended", {"1.1"})],
)
def test_referring_physicians_see_a_study_once_its_report_is_signed(world, status, seen):
    from reports.models import Report
    from reports.services import choose_template

    study = world["riverside_ct"]
    author = get_user_model().objects.get(username="reader")
    Report.objects.create(
        study=study, template=choose_template(study), author=author, status=status
    )
    assert visible("referrer") == seen
    assert visible("referrer2") == set()  # Lakeview's referrer: not their facility


def test_agreement_limited_to_modalities(world):
    from accounts.models import ReadingAgreement

    ReadingAgreement.objects.filter(sending_facility__slug="lakeview").update(modalities=["CT"])
    assert visible("reader") == {"1.1", "1.3"}


def _limit_every_agreement(modalities: list[str]) -> None:
    from accounts.models import ReadingAgreement

    ReadingAgreement.objects.update(modalities=modalities)


def test_priors_through_agreements_all_limited_to_modalities(world):
    """Every agreement names its modalities (the sparse case bench/qido.py's PET reader
    measures): the children they reach bring all their studies as priors, and identity links
    are followed as they change, through the study's person column."""
    _limit_every_agreement(["CT", "MR"])
    assert visible("reader") == READING_SIDE
    _limit_every_agreement(["CT"])
    assert visible("reader") == {"1.1", "1.3"}  # Lakeview's MR is neither direct nor a prior
    mia = PatientRecord.objects.get(patient_id="RCH-1").person
    riverside = Organization.objects.get(slug="riverside")
    make_study(riverside, "1.5", "RCH-1", mia, modality="US")  # Mia's own other modality
    make_study(riverside, "1.6", "RCH-9", Person.objects.create(), modality="US")
    assert visible("reader") == {"1.1", "1.3", "1.5"}
    PatientRecord.objects.filter(patient_id="LV-1").update(person=mia)  # linked to Mia
    assert visible("reader") == {"1.1", "1.2", "1.3", "1.5"}
    PatientRecord.objects.filter(patient_id="HC-1").update(person=Person.objects.create())
    assert visible("reader") == {"1.1", "1.2", "1.5"}  # unlinked: no longer a prior
    PatientRecord.objects.filter(patient_id="RCH-1").update(person=None)
    assert visible("reader") == {"1.1"}  # no person: the direct study only


def test_a_pet_only_reader_sees_the_children_with_pet_and_their_priors(world):
    """A PET-only agreement reaches nobody until a child has a PET study; then that child's
    other studies, at any hospital, come as priors. Another kind of membership adds its own."""
    _limit_every_agreement(["PT"])
    assert visible("reader") == set()
    riverside = Organization.objects.get(slug="riverside")
    mia = PatientRecord.objects.get(patient_id="RCH-1").person
    make_study(riverside, "1.7", "RCH-1", mia, modality="PT")
    assert visible("reader") == {"1.1", "1.3", "1.7"}
    Membership.objects.create(
        user=get_user_model().objects.get(username="reader"),
        organization=Organization.objects.get(slug="hillcrest"),
        role=Role.TECHNOLOGIST,
    )  # a membership that is no agreement: no prefilter, the probe alone
    assert visible("reader") == {"1.1", "1.3", "1.4", "1.7"}


def test_a_modality_limit_matches_whole_codes_of_modalities_in_study(world):
    """An agreement limited to PT covers a study whose ModalitiesInStudy holds PT (ingest adds
    every instance's Modality to it), whatever its first series, and never a longer code."""
    _limit_every_agreement(["PT"])
    riverside = Organization.objects.get(slug="riverside")
    study = make_study(riverside, "1.8", "RCH-8", Person.objects.create(), modality="CT")
    for value, seen in [("CT\\PTX", False), ("XPT\\CT", False), ("CT\\PT", True), ("PT", True)]:
        Study.objects.filter(pk=study.pk).update(modalities_in_study=value)
        assert ("1.8" in visible("reader")) is seen, value


def test_inactive_membership_and_inactive_user_see_nothing(world):
    Membership.objects.filter(user__username="tech").update(active=False)
    assert visible("tech") == set()
    get_user_model().objects.filter(username="reader").update(is_active=False)
    assert visible("reader") == set()


def test_can_view_study(world):
    tech = get_user_model().objects.get(username="tech")
    assert can_view_study(tech, world["riverside_ct"])
    assert not can_view_study(tech, world["lakeview_mr"])


def test_no_duplicates_when_a_study_has_many_series(world):
    study = world["riverside_ct"]
    for n in range(3):
        Series.objects.create(series_instance_uid=f"1.1.9.{n}", study=study, modality="CT")
    reader = get_user_model().objects.get(username="reader")
    assert visible_studies(reader).filter(pk=study.pk).count() == 1


def _membership_queries(queries) -> int:
    return sum('FROM "accounts_membership"' in q["sql"] for q in queries)


def test_a_request_reads_memberships_once_and_sees_its_own_change(world):
    reader = get_user_model().objects.get(username="reader")
    with CaptureQueriesContext(connection) as outside:
        assert visible("reader") == READING_SIDE
    assert _membership_queries(outside.captured_queries) >= 2, "outside a request: read afresh"
    with memberships_read_once():
        with CaptureQueriesContext(connection) as inside:
            assert visible("reader") == READING_SIDE
            assert visible("reader") == READING_SIDE
        assert _membership_queries(inside.captured_queries) == 1
        membership = reader.memberships.get()
        membership.active = False
        membership.save(update_fields=["active"])
        assert visible("reader") == set(), "the change is seen within the same request"


def test_a_search_request_reads_memberships_once(world, client):
    from tests.accounts.helpers import login_verified

    login_verified(client, get_user_model().objects.get(username="reader"))
    with CaptureQueriesContext(connection) as request:
        answer = client.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+json")
    assert answer.status_code == 200 and len(answer.json()) == len(READING_SIDE)
    assert _membership_queries(request.captured_queries) == 1


ANNOTATABLE = {
    "reader": {"1.1", "1.2"},  # not Mia's prior at Hillcrest: another hospital's study
    "scheduler": {"1.1", "1.2"},
    "tech": {"1.1"},
    "referrer": set(),  # referring physicians view images read-only
    "admin": {"1.1", "1.2", "1.3", "1.4"},
    "outsider": {"1.3", "1.4"},  # Hillcrest's own technologist
}


@pytest.mark.parametrize("username", sorted(ANNOTATABLE))
def test_marks_go_only_on_studies_a_membership_reaches_not_on_priors(world, username):
    """Measurements and key images end up in the owning hospital's report, PDF and portal:
    a reading group that sees a study only as a prior may look at it, not write into it."""
    user = get_user_model().objects.get(username=username)
    marked = set(annotatable_studies(user).values_list("study_instance_uid", flat=True))
    assert marked == ANNOTATABLE[username]
    assert marked <= visible(username)


def test_a_reader_cannot_mark_a_prior_from_another_hospital(world, client):
    from tests.accounts.helpers import login_verified

    login_verified(client, get_user_model().objects.get(username="reader"))
    prior = "/viewer/studies/1.3"
    assert client.get(f"{prior}/measurements").status_code == 200  # looking is allowed
    refused = client.post(f"{prior}/key-images", {"sop": "1.3.1.1", "frame": "1"})
    assert refused.status_code == 403 and "prior" in refused.json()["error"]
    body = {"sop": "1.3.1.1", "frame": 1, "kind": "distance", "points": [[0, 0], [1, 1]]}
    refused = client.post(f"{prior}/measurements", body, content_type="application/json")
    assert refused.status_code == 403 and "prior" in refused.json()["error"]
    # On the reader's own study the same request gets past the check (no such image: 404).
    own = client.post("/viewer/studies/1.1/key-images", {"sop": "1.3.1.1", "frame": "1"})
    assert own.status_code == 404
