"""The steward's pages: the review queue with both records and the evidence side by side,
link and keep-apart buttons, the person page with unlink and unmerge; non-stewards get 404."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Membership, Organization, ReadingAgreement, Role
from audit.models import Action, AuditEvent
from identity.models import LinkEvent, PairDecision, PatientRecord, Person
from tests.accounts.helpers import login_verified


@pytest.fixture
def group(riverside, lakeview):
    org = Organization.objects.create(
        name="Northstar", slug="northstar", kind=Organization.Kind.READING_GROUP
    )
    ReadingAgreement.objects.create(reading_group=org, sending_facility=riverside)
    ReadingAgreement.objects.create(reading_group=org, sending_facility=lakeview)
    return org


def member(group, username: str, role: str):
    user = get_user_model().objects.create_user(username)
    Membership.objects.create(user=user, organization=group, role=role)
    return user


def record(org, mrn: str, name: str) -> PatientRecord:
    return PatientRecord.objects.create(
        organization=org,
        patient_id=mrn,
        name=name,
        person=Person.objects.create(),
        match_pending=False,
    )


@pytest.fixture
def pair(riverside, lakeview):
    a = record(riverside, "RCH-1", "CARTER^MIA")
    b = record(lakeview, "LV-1", "<script>CARTER</script>^MIA")
    evidence = [{"field": "birth_date", "outcome": "agree", "weight": 4.5, "detail": "same"}]
    return PairDecision.objects.create(
        record_a=a, record_b=b, score=9.5, evidence=evidence, status=PairDecision.Status.PENDING
    )


def test_review_queue_shows_pairs_and_links(client, group, pair):
    steward = member(group, "steward", Role.STEWARD)
    login_verified(client, steward)
    page = client.get("/identity/review/").content.decode()
    assert "RCH-1" in page and "LV-1" in page and "birth_date" in page
    assert "<script>CARTER" not in page and "&lt;script&gt;" in page  # DICOM text escaped
    response = client.post(f"/identity/review/{pair.pk}/", {"action": "link"})
    assert response.status_code == 302
    a, b = PatientRecord.objects.order_by("pk")
    assert a.person_id == b.person_id
    pair.refresh_from_db()
    assert pair.status == PairDecision.Status.LINKED
    audited = AuditEvent.objects.filter(action=Action.IDENTITY_LINK, user=steward)
    assert sorted(e.patient_record_id for e in audited) == [a.pk, b.pk]
    # Each names the link event (which lists every record that moved) and the person formed.
    event = LinkEvent.objects.get()
    assert all(
        e.detail == {"pair": pair.pk, "manual": True, "event": event.pk, "person": a.person_id}
        for e in audited
    )
    assert event.target_id == a.person_id and b.pk in event.records
    assert "Nothing awaits review" in client.get("/identity/review/").content.decode()


def test_keep_apart_then_person_page_unlink_and_unmerge(client, group, pair):
    scheduler = member(group, "sched", Role.SCHEDULER)
    login_verified(client, scheduler)
    client.post(f"/identity/review/{pair.pk}/", {"action": "keep_apart"})
    pair.refresh_from_db()
    assert pair.status == PairDecision.Status.KEPT_APART
    a, b = PatientRecord.objects.order_by("pk")
    assert a.person_id != b.person_id
    # Manual link from the person page, then undo it.
    client.post(
        f"/identity/persons/{a.person_id}/link/", {"patient_id": "LV-1", "organization": "lakeview"}
    )
    b.refresh_from_db()
    assert b.person_id == a.person_id
    page = client.get(f"/identity/persons/{a.person_id}/").content.decode()
    assert "RR-" in page and "Unmerge" in page
    event = LinkEvent.objects.get(kind=LinkEvent.Kind.LINK)
    # Each form on the page lets the steward say why (the record of the change keeps it).
    assert page.count('name="reason"') == 4  # link, unlink (one per record: two), unmerge
    client.post(f"/identity/events/{event.pk}/unmerge/", {"reason": "twins, not one child"})
    b.refresh_from_db()
    assert b.person_id != a.person_id
    assert LinkEvent.objects.get(kind=LinkEvent.Kind.UNMERGE).reason == "twins, not one child"
    assert AuditEvent.objects.filter(action=Action.IDENTITY_UNLINK, user=scheduler).exists()


def test_non_stewards_get_404(client, group, pair, riverside):
    reader = member(group, "reader", Role.READER)
    login_verified(client, reader)
    assert client.get("/identity/review/").status_code == 404
    assert client.post(f"/identity/review/{pair.pk}/", {"action": "link"}).status_code == 404
    assert client.get(f"/identity/persons/{pair.record_a.person_id}/").status_code == 404


def test_stewards_only_see_their_facilities(client, riverside, lakeview, pair):
    other = Organization.objects.create(
        name="Elsewhere", slug="elsewhere", kind=Organization.Kind.READING_GROUP
    )
    ReadingAgreement.objects.create(reading_group=other, sending_facility=riverside)
    steward = member(other, "steward2", Role.STEWARD)
    login_verified(client, steward)
    assert "RCH-1" not in client.get("/identity/review/").content.decode()  # half is Lakeview
    assert client.post(f"/identity/review/{pair.pk}/", {"action": "link"}).status_code == 404


# --- malformed input: a 400 with the reason, never a 500 ----------------------------------------


@pytest.fixture
def steward_client(client, group):
    login_verified(client, member(group, "steward", Role.STEWARD))
    client.raise_request_exception = False
    return client


NUL = "a\x00b"  # PostgreSQL text refuses NUL: a query or row holding one raises


@pytest.mark.parametrize(
    "form, field",
    [
        ({"patient_id": NUL, "organization": "lakeview"}, "patient_id"),
        ({"patient_id": "LV-1", "organization": NUL}, "organization"),
        ({"patient_id": "LV-1", "organization": "lakeview", "reason": NUL}, "reason"),
        ({"patient_id": "L" * 65, "organization": "lakeview"}, "patient_id"),
        ({"patient_id": "LV-1", "organization": "not a slug!"}, "organization"),
    ],
)
def test_link_with_malformed_fields_is_a_400_and_links_nothing(steward_client, pair, form, field):
    a = pair.record_a
    response = steward_client.post(f"/identity/persons/{a.person_id}/link/", form)
    assert response.status_code == 400, response.status_code
    assert field in response.content.decode()  # the steward is told what to correct
    assert not LinkEvent.objects.exists()


def test_unlink_and_unmerge_with_a_nul_reason_are_400s(steward_client, pair):
    a, b = pair.record_a, pair.record_b
    link = steward_client.post(
        f"/identity/persons/{a.person_id}/link/", {"patient_id": "LV-1", "organization": "lakeview"}
    )
    assert link.status_code == 302
    event = LinkEvent.objects.get()
    links = AuditEvent.objects.filter(action=Action.IDENTITY_LINK)
    expected = {"manual": True, "event": event.pk, "person": event.target_id}
    assert [e.detail for e in links] == [expected, expected]
    response = steward_client.post(f"/identity/records/{b.pk}/unlink/", {"reason": NUL})
    assert response.status_code == 400 and b"reason" in response.content
    response = steward_client.post(f"/identity/events/{event.pk}/unmerge/", {"reason": NUL})
    assert response.status_code == 400 and b"reason" in response.content
    assert LinkEvent.objects.get() == event  # neither an unlink nor an unmerge happened
    b.refresh_from_db()
    assert b.person_id == PatientRecord.objects.get(pk=a.pk).person_id


def test_decide_with_a_nul_action_is_a_400(steward_client, pair):
    response = steward_client.post(f"/identity/review/{pair.pk}/", {"action": NUL})
    assert response.status_code == 400
    pair.refresh_from_db()
    assert pair.status == PairDecision.Status.PENDING


@pytest.mark.parametrize("big", ["99999999999999999999999", str(2**63)])
@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/identity/persons/{}/"),
        ("post", "/identity/persons/{}/link/"),
        ("post", "/identity/records/{}/unlink/"),
        ("post", "/identity/events/{}/unmerge/"),
        ("post", "/identity/review/{}/"),
    ],
)
def test_an_id_past_the_integer_range_is_a_404(steward_client, pair, method, path, big):
    """The path's <int:pk> takes any run of digits; no row has such an id."""
    response = getattr(steward_client, method)(path.format(big))
    assert response.status_code == 404, response.status_code
