"""record() writes one event whose every field says who, as whom, what, to which patient,
from where: the facts a privacy officer reconstructs an access from."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from accounts.models import Membership, Organization, Role
from audit.models import Action, AuditEvent, Outcome
from audit.services import client_ip, record
from tests.audit.conftest import make_study


def request_from(user, ip: str = "10.1.2.3", **meta):
    request = RequestFactory().get("/studies/x/", REMOTE_ADDR=ip, **meta)
    request.user = user
    return request


def test_study_view_event_has_every_field(reader, reading_group, study):
    request = request_from(reader, HTTP_USER_AGENT="Mozilla/5.0 (X11) Firefox/128")
    event = record(request, Action.STUDY_VIEW, study=study, detail={"series": 3})

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.user == reader and stored.username == "drreader"
    assert stored.role == Role.READER
    assert stored.organization == reading_group
    assert stored.organization_name == "Northstar Pediatric Imaging"
    assert stored.action == "study.view" and stored.outcome == "success"
    assert stored.study == study and stored.study_uid == "1.2.826.0.1.3680043.8.498.1"
    assert stored.patient_record == study.patient_record
    assert stored.patient_id == "RCH-100234"
    assert stored.patient_issuer == "Riverside Community Hospital"
    assert stored.source_ip == "10.1.2.3"
    assert stored.user_agent == "Mozilla/5.0 (X11) Firefox/128"
    assert stored.detail == {"series": 3}
    assert stored.object_type == "" and stored.object_id == ""
    assert stored.time is not None


def test_membership_that_reads_for_the_study_is_named(reader, riverside, lakeview, study):
    """A user in two organisations: the event names the one the study came through."""
    tech_home = Membership.objects.create(
        user=reader, organization=lakeview, role=Role.TECHNOLOGIST
    )
    lakeview_study = make_study(lakeview, "LV-1", "1.2.3.4")
    assert record(request_from(reader), Action.STUDY_VIEW, study=study).role == Role.READER
    event = record(request_from(reader), Action.STUDY_VIEW, study=lakeview_study)
    assert event.role == Role.TECHNOLOGIST and event.organization == tech_home.organization
    # No study: the most powerful membership.
    assert record(request_from(reader), Action.STUDY_SEARCH).role == Role.READER


def test_superuser_without_membership_and_anonymous_requests(db, rf):
    root = get_user_model().objects.create_superuser("root", password="x")
    event = record(request_from(root), Action.ADMIN_CHANGE)
    assert event.role == "superuser" and event.organization is None
    anonymous = rf.get("/", REMOTE_ADDR="192.0.2.9")
    from django.contrib.auth.models import AnonymousUser

    anonymous.user = AnonymousUser()
    event = record(anonymous, Action.ACCESS_DENIED, Outcome.DENIED, username="guess")
    assert event.user is None and event.username == "guess" and event.outcome == "denied"
    assert event.source_ip == "192.0.2.9"


def test_without_a_request(reader, study):
    event = record(None, Action.IDENTITY_LINK, user=reader, patient_record=study.patient_record)
    assert event.source_ip is None and event.user_agent == ""
    assert event.patient_id == "RCH-100234" and event.study is None


def test_obj_is_recorded_by_type_and_id(reader, reading_group):
    event = record(request_from(reader), Action.EXPORT, obj=reading_group)
    assert (event.object_type, event.object_id) == ("accounts.organization", str(reading_group.pk))
    assert event.object_label == f"accounts.organization:{reading_group.pk}"


def test_study_passed_as_obj_fills_study_and_patient(reader, study):
    event = record(request_from(reader), Action.IMAGE_VIEW, obj=study)
    assert event.study == study and event.patient_id == "RCH-100234"


def test_unknown_action_or_outcome_is_refused(reader):
    with pytest.raises(ValueError, match="unknown audit action"):
        record(request_from(reader), "study.peek")
    with pytest.raises(ValueError, match="unknown audit outcome"):
        record(request_from(reader), Action.STUDY_VIEW, "meh")
    assert not AuditEvent.objects.exists()


def test_user_agent_is_truncated(reader):
    event = record(request_from(reader, HTTP_USER_AGENT="A" * 2000), Action.STUDY_SEARCH)
    assert len(event.user_agent) == 512


def test_inactive_membership_gives_no_role(reader):
    Membership.objects.filter(user=reader).update(active=False)
    assert record(request_from(reader), Action.STUDY_SEARCH).role == ""


# --- source address ---------------------------------------------------------------------


def test_forwarded_for_is_ignored_without_trusted_proxies(rf, settings):
    settings.TRUSTED_PROXIES = []
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert client_ip(request) == "10.0.0.5"


def test_forwarded_for_is_read_right_to_left_through_trusted_proxies(rf, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "::1"]
    # The client forged the first entry; our proxies appended the last two.
    request = rf.get(
        "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7, 10.0.0.9"
    )
    assert client_ip(request) == "203.0.113.7"
    # A peer that is not a trusted proxy cannot speak for anyone else.
    request = rf.get("/", REMOTE_ADDR="198.51.100.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert client_ip(request) == "198.51.100.2"
    # Garbage in the header stops the walk at the last trustworthy address.
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="<script>, 10.0.0.8")
    assert client_ip(request) == "10.0.0.8"
    settings.TRUSTED_PROXIES = "10.0.0.0/8"  # a comma-separated string works too
    request = rf.get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="2001:db8::1")
    assert client_ip(request) == "2001:db8::1"


def test_bad_trusted_proxies_setting_is_reported(rf, settings):
    settings.TRUSTED_PROXIES = ["not-an-ip"]
    with pytest.raises(ImproperlyConfigured, match="not-an-ip"):
        client_ip(rf.get("/", REMOTE_ADDR="10.0.0.5"))


def test_unparseable_remote_addr_is_stored_as_none(reader):
    request = request_from(reader, ip="unix-socket")
    assert record(request, Action.STUDY_SEARCH).source_ip is None


def test_organization_kind_for_platform_admin(db):
    platform = Organization.objects.create(
        name="ReadingRoom", slug="platform", kind=Organization.Kind.PLATFORM
    )
    admin = get_user_model().objects.create_user("ops", password="x")
    Membership.objects.create(user=admin, organization=platform, role=Role.ADMIN)
    event = record(request_from(admin), Action.ADMIN_CHANGE)
    assert event.role == Role.ADMIN and event.organization_name == "ReadingRoom"
