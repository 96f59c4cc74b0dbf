"""The privacy officer's page: only auditors see it, filters narrow it, text is escaped, and
the exports are a DICOM audit message document and RFC 5424 lines."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import Membership, Organization, Role
from audit.exporting import sd_escape, syslog_line
from audit.models import Action, AuditEvent, Outcome
from audit.services import record
from tests.accounts.helpers import login_verified
from tests.audit.conftest import make_study

# RFC 5424: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
SD_PARAM = r'[^= \]"]{1,32}="(?:[^"\\\]]|\\["\\\]])*"'
SYSLOG = re.compile(
    r"^<(?P<pri>\d{1,3})>1 "
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) "
    r"(?P<host>[!-~]{1,255}) readingroom - AUDIT "
    rf"\[(?P<sdid>[^= \]\"]{{1,32}})(?P<params>(?: {SD_PARAM})*)\]"
    r"(?: (?P<msg>.*))?$"
)


def sd_params(params: str) -> dict[str, str]:
    found = re.findall(r'([^= \]"]{1,32})="((?:[^"\\\]]|\\["\\\]])*)"', params)
    return {k: re.sub(r'\\(["\\\]])', r"\1", v) for k, v in found}


@pytest.fixture
def events(reader, study, lakeview):
    """Three accesses by the reader, one by another user on another patient, one failure."""
    other = make_study(lakeview, "LV-5520981", "1.2.3.99")
    colleague = get_user_model().objects.create_user("colleague", password="x")
    return {
        "view": record(None, Action.STUDY_VIEW, user=reader, study=study),
        "image": record(None, Action.IMAGE_VIEW, user=reader, study=study),
        "search": record(None, Action.STUDY_SEARCH, user=reader),
        "other": record(None, Action.STUDY_VIEW, user=colleague, study=other),
        "failure": record(None, Action.LOGIN_FAILURE, Outcome.FAILURE, username="mallory"),
    }


def rows(response) -> int:
    """Event rows in the page's table body (0 when no table is shown)."""
    page = response.content.decode()
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S)
    return body.group(1).count("<tr>") if body else 0


def test_anonymous_is_sent_to_login(client, db):
    response = client.get("/audit/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_plain_user_gets_404_and_leaves_no_view_event(client, events):
    plain = get_user_model().objects.create_user("plain", password="x")
    client.force_login(plain)
    assert client.get("/audit/").status_code == 404
    assert client.get("/audit/export/xml/").status_code == 404
    assert client.get("/audit/export/syslog/").status_code == 404
    assert not AuditEvent.objects.filter(action__startswith="audit.").exists()


def test_reader_gets_404(client, reader, events):
    login_verified(client, reader)
    assert client.get("/audit/").status_code == 404


def test_privacy_officer_permission_opens_the_page(client, events):
    officer = get_user_model().objects.create_user("officer", password="x")
    officer.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    login_verified(client, officer)
    response = client.get("/audit/", {"action": "study.view"})
    assert response.status_code == 200 and rows(response) == 2


def test_auditor_without_a_second_factor_is_sent_to_enrol(client, events):
    officer = get_user_model().objects.create_user("officer", password="x")
    officer.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    client.force_login(officer)
    response = client.get("/audit/export/xml/")
    assert response.status_code == 302
    assert response["Location"].startswith("/account/mfa/enrol/?next=")
    assert not AuditEvent.objects.filter(action__startswith="audit.").exists()


def test_admin_sees_events_and_the_view_is_itself_recorded(auditor_client, auditor, events):
    response = auditor_client.get("/audit/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "RCH-100234 (Riverside Community Hospital)" in page
    assert "LV-5520981" in page and "mallory" in page
    # Five events, this page view and the MFA login event of the auditor's session.
    view = AuditEvent.objects.get(action=Action.AUDIT_VIEW)
    assert view.user == auditor and view.role == "superuser"
    assert rows(response) == AuditEvent.objects.count()


def test_filters(auditor_client, events):
    def count(**params) -> int:
        response = auditor_client.get("/audit/", params)
        assert response.status_code == 200
        return rows(response)

    assert count(patient_id="RCH-100234") == 2
    assert count(patient_id="LV-5520981") == 1
    assert count(patient_id="RCH-1") == 0  # exact, not a prefix
    assert count(username="drreader") == 3
    assert count(username="drreader", action="image.view") == 1
    assert count(study_uid="1.2.3.99") == 1
    assert count(outcome="failure") == 1
    now = timezone.now()
    assert count(action="study.view", since=(now - timedelta(hours=1)).isoformat()) == 2
    assert count(action="study.view", until=(now - timedelta(hours=1)).isoformat()) == 0
    # An inverted range is an error, not an empty page that looks like "no access".
    response = auditor_client.get(
        "/audit/", {"since": now.isoformat(), "until": (now - timedelta(days=1)).isoformat()}
    )
    assert "is after" in response.content.decode() and rows(response) == 0


def test_pagination_keeps_the_filter(auditor_client, reader):
    for _ in range(55):
        record(None, Action.STUDY_SEARCH, user=reader)
    first = auditor_client.get("/audit/", {"action": "study.search"}).content.decode()
    assert "Page 1 of 2" in first
    assert "?action=study.search&amp;page=2" in first
    second = auditor_client.get("/audit/", {"action": "study.search", "page": 2})
    assert rows(second) == 5


def test_text_is_escaped_on_the_page(auditor_client, riverside, reader):
    evil = make_study(riverside, "<script>alert(1)</script>", "1.2.3.666")
    record(None, Action.STUDY_VIEW, user=reader, study=evil, detail={"q": '"><img src=x>'})
    record(None, Action.LOGIN_FAILURE, Outcome.FAILURE, username="<script>alert(2)</script>")
    page = auditor_client.get("/audit/").content.decode()
    assert "<script>alert" not in page and "<img src=x>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;img src=x&gt;" in page


# --- exports ---------------------------------------------------------------------------------


def test_xml_export_is_dicom_audit_messages(auditor_client, riverside, reader):
    tricky = make_study(riverside, 'A&B<1>"^2', "1.2.3.777")
    record(None, Action.STUDY_VIEW, user=reader, study=tricky, detail={"frames": 12})
    response = auditor_client.get("/audit/export/xml/", {"action": "study.view"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert "attachment;" in response["Content-Disposition"]
    body = response.content.decode()
    # Escaped by the serializer (& and < in the MRN), and HL7-escaped inside the CX value.
    assert "A\\T\\B&lt;1&gt;&quot;\\S\\2^^^Riverside Community Hospital" in body

    root = ET.fromstring(response.content)
    messages = root.findall("AuditMessage")
    assert root.tag == "AuditMessages" and len(messages) == 1
    message = messages[0]
    assert [child.tag for child in message] == [
        "EventIdentification",
        "ActiveParticipant",
        "ActiveParticipant",
        "AuditSourceIdentification",
        "ParticipantObjectIdentification",
        "ParticipantObjectIdentification",
    ]
    ident = message.find("EventIdentification")
    assert ident.get("EventActionCode") == "R" and ident.get("EventOutcomeIndicator") == "0"
    assert ident.get("EventDateTime").endswith("+00:00")
    event_id = ident.find("EventID")
    assert (event_id.get("csd-code"), event_id.get("codeSystemName")) == ("110103", "DCM")
    person = message.findall("ActiveParticipant")[0]
    assert person.get("UserID") == "drreader" and person.get("UserIsRequestor") == "true"
    assert person.find("RoleIDCode").get("csd-code") == "reader"
    patient, study = message.findall("ParticipantObjectIdentification")
    assert patient.get("ParticipantObjectID") == 'A\\T\\B<1>"\\S\\2^^^Riverside Community Hospital'
    assert patient.get("ParticipantObjectTypeCodeRole") == "1"
    assert patient.find("ParticipantObjectIDTypeCode").get("csd-code") == "2"
    assert study.get("ParticipantObjectID") == "1.2.3.777"
    assert study.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"
    detail = study.find("ParticipantObjectDetail")
    assert json.loads(base64.b64decode(detail.get("value"))) == {"frames": 12}
    assert AuditEvent.objects.filter(action=Action.AUDIT_EXPORT).count() == 1


def test_xml_export_of_a_failed_login(auditor_client, db):
    record(
        None, Action.LOGIN_FAILURE, Outcome.FAILURE, username="mallory", detail={"reason": "bad"}
    )
    root = ET.fromstring(auditor_client.get("/audit/export/xml/", {"username": "mallory"}).content)
    (message,) = root.findall("AuditMessage")
    ident = message.find("EventIdentification")
    assert ident.get("EventOutcomeIndicator") == "4"
    assert ident.find("EventID").get("csd-code") == "110114"
    assert ident.find("EventTypeCode").get("csd-code") == "110122"
    assert ident.find("EventOutcomeDescription").text == "failure: bad"
    assert message.find("ActiveParticipant").get("UserID") == "mallory"
    assert message.find("ParticipantObjectIdentification") is None


def test_xml_export_survives_xml_illegal_characters_typed_at_sign_in(auditor_client, db):
    """Anyone can type a username with U+FFFF (or a C0 control) into the sign-in form; the
    failure is recorded as typed, and must not make the whole XML export unreadable."""
    username = "mal\uffffl\ufffe\x01ory"
    response = auditor_client.post("/login/", {"username": username, "password": "wrong-one!"})
    assert response.status_code == 200
    assert AuditEvent.objects.filter(action=Action.LOGIN_FAILURE, username=username).exists()
    Organization.objects.create(name="Bad\x02 Org\uffff", slug="bad", kind="reading_group")
    reader = get_user_model().objects.create_user("badorg")
    Membership.objects.create(
        user=reader, organization_id=Organization.objects.get(slug="bad").pk, role=Role.READER
    )
    record(None, Action.STUDY_SEARCH, user=reader)
    root = ET.fromstring(auditor_client.get("/audit/export/xml/").content)
    users = [p.get("UserID") for p in root.iter("ActiveParticipant")]
    assert "mal\ufffdl\ufffd\ufffdory" in users
    roles = [c.get("originalText") for c in root.iter("RoleIDCode")]
    assert "reader at Bad\ufffd Org\ufffd" in roles


def test_syslog_export_lines_have_the_rfc5424_shape(auditor_client, events):
    response = auditor_client.get("/audit/export/syslog/", {"username": "drreader"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    lines = response.content.decode().split("\n")
    assert lines[-1] == "" and len(lines) == 4  # three events, each ending in a newline
    by_id = {}
    for line in lines[:-1]:
        match = SYSLOG.match(line)
        assert match, line
        assert match["pri"] == "85"  # authpriv.notice
        assert match["sdid"] == "readingroom@32473"
        params = sd_params(match["params"])
        by_id[int(params["id"])] = (params, match["msg"])
    params, msg = by_id[events["view"].pk]
    assert params["action"] == "study.view" and params["user"] == "drreader"
    assert params["patientId"] == "RCH-100234" and params["studyUid"] == events["view"].study_uid
    assert params["org"] == "Northstar Pediatric Imaging"
    assert msg == "Study viewed success drreader"


def test_syslog_structured_data_is_escaped(db):
    event = record(
        None,
        Action.LOGIN_FAILURE,
        Outcome.FAILURE,
        username='a"b\\c]d\nFAKE <13>1 forged line',
    )
    line = syslog_line(event, hostname="host.example")
    assert "\n" not in line
    match = SYSLOG.match(line)
    assert match and match["pri"] == "84"  # authpriv.warning
    assert 'user="a\\"b\\\\c\\]d\ufffdFAKE <13>1 forged line"' in line
    assert sd_params(match["params"])["user"] == 'a"b\\c]d\ufffdFAKE <13>1 forged line'
    assert sd_escape('x"]\\') == 'x\\"\\]\\\\'


def test_export_respects_the_limit(auditor_client, reader, settings):
    settings.AUDIT_EXPORT_MAX_EVENTS = 2
    for _ in range(3):
        record(None, Action.STUDY_SEARCH, user=reader)
    response = auditor_client.get("/audit/export/syslog/", {"action": "study.search"})
    assert response.status_code == 400 and "Narrow" in response.content.decode()
    failed = AuditEvent.objects.get(action=Action.AUDIT_EXPORT)
    assert failed.outcome == "failure" and failed.detail["count"] == 3


def test_unknown_export_format_is_404(auditor_client, db):
    assert auditor_client.get("/audit/export/csv/").status_code == 404


def test_admin_is_read_only(auditor_client, events):
    listing = auditor_client.get("/admin/audit/auditevent/")
    assert listing.status_code == 200 and "RCH-100234" in listing.content.decode()
    assert AuditEvent.objects.get(action=Action.AUDIT_VIEW).detail["via"] == "admin"
    assert auditor_client.get("/admin/audit/auditevent/add/").status_code == 403
    pk = events["view"].pk
    change = auditor_client.post(f"/admin/audit/auditevent/{pk}/change/", {"action": "logout"})
    assert change.status_code == 403 or AuditEvent.objects.get(pk=pk).action == "study.view"
    assert auditor_client.post(f"/admin/audit/auditevent/{pk}/delete/").status_code == 403
    assert AuditEvent.objects.get(pk=pk).action == "study.view"


def test_nul_characters_in_admin_filters_and_recorded_detail_are_no_500(auditor_client, events):
    """PostgreSQL refuses NUL in text and in jsonb: a NUL in the admin's search or filter, or
    in any text a caller puts in an event's detail, must not turn into a 500."""
    listing = auditor_client.get("/admin/audit/auditevent/", {"q": "a\x00b"})
    assert listing.status_code in (200, 400)
    assert auditor_client.get(
        "/admin/audit/auditevent/", {"action__exact": "\x00"}
    ).status_code in (
        200,
        400,
    )
    event = record(
        None,
        Action.LOGIN_FAILURE,
        Outcome.FAILURE,
        username="nul\x00name",
        object_type="x",
        object_id="id\x00",
        detail={"typed": "a\x00b", "nested": ["c\x00"], "k\x00": 1},
    )
    event = AuditEvent.objects.get(pk=event.pk)
    assert event.username == "nul\ufffdname" and event.object_id == "id\ufffd"
    assert event.detail == {"typed": "a\ufffdb", "nested": ["c\ufffd"], "k\ufffd": 1}


def test_every_action_has_its_dicom_event_codes():
    """A new Action must choose its PS3.15 EventID, not fall silently into the generic one."""
    from audit.exporting import EVENT_CODES

    assert set(EVENT_CODES) == set(Action.values)
