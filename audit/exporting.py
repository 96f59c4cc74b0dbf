"""Audit events in the two forms audit repositories read.

DICOM PS3.15 A.5 audit messages (the RFC 3881 descendant ATNA repositories store), built with
ElementTree so every value is escaped by the serializer, and RFC 5424 syslog lines with the
event in one structured-data element. Both carry only what the row holds: nothing is looked up
again, so an export says what was recorded, even after the user or study is gone.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC
from typing import NamedTuple

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from .models import Action, AuditEvent, Outcome


class Code(NamedTuple):
    code: str
    scheme: str
    meaning: str


DCM = "DCM"
# PS3.16 CID 400 (Audit Event ID) and CID 401-403 (event type codes).
APPLICATION_ACTIVITY = Code("110100", DCM, "Application Activity")
AUDIT_LOG_USED = Code("110101", DCM, "Audit Log Used")
INSTANCES_ACCESSED = Code("110103", DCM, "DICOM Instances Accessed")
INSTANCES_TRANSFERRED = Code("110104", DCM, "DICOM Instances Transferred")
EXPORT = Code("110106", DCM, "Export")
PATIENT_RECORD = Code("110110", DCM, "Patient Record")
QUERY = Code("110112", DCM, "Query")
SECURITY_ALERT = Code("110113", DCM, "Security Alert")
USER_AUTHENTICATION = Code("110114", DCM, "User Authentication")
LOGIN = Code("110122", DCM, "Login")
LOGOUT = Code("110123", DCM, "Logout")
SECURITY_CONFIGURATION = Code("110129", DCM, "Security Configuration")
USE_OF_RESTRICTED_FUNCTION = Code("110132", DCM, "Use of Restricted Function")
USER_SECURITY_ATTRIBUTES_CHANGED = Code("110137", DCM, "User Security Attributes Changed")
APPLICATION = Code("110150", DCM, "Application")
STUDY_INSTANCE_UID = Code("110180", DCM, "Study Instance UID")
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")


class EventCodes(NamedTuple):
    event_id: Code
    action_code: str  # C R U D E
    event_type: Code | None = None


EVENT_CODES: dict[str, EventCodes] = {
    Action.STUDY_VIEW: EventCodes(INSTANCES_ACCESSED, "R"),
    Action.IMAGE_VIEW: EventCodes(INSTANCES_ACCESSED, "R"),
    Action.STUDY_SEARCH: EventCodes(QUERY, "E"),
    Action.DICOMWEB_RETRIEVE: EventCodes(INSTANCES_TRANSFERRED, "R"),
    Action.DICOMWEB_STORE: EventCodes(INSTANCES_TRANSFERRED, "C"),
    Action.REPORT_OPEN: EventCodes(PATIENT_RECORD, "R"),
    Action.REPORT_DRAFT: EventCodes(PATIENT_RECORD, "U"),
    Action.REPORT_SIGN: EventCodes(PATIENT_RECORD, "U"),
    Action.REPORT_ADDEND: EventCodes(PATIENT_RECORD, "U"),
    Action.REPORT_CRITICAL: EventCodes(PATIENT_RECORD, "U"),
    Action.EXPORT: EventCodes(EXPORT, "R"),
    Action.ANNOTATE: EventCodes(PATIENT_RECORD, "U"),
    Action.IDENTITY_LINK: EventCodes(PATIENT_RECORD, "U"),
    Action.IDENTITY_UNLINK: EventCodes(PATIENT_RECORD, "U"),
    Action.IDENTITY_KEEP_APART: EventCodes(PATIENT_RECORD, "U"),
    Action.IDENTITY_REVIEW: EventCodes(PATIENT_RECORD, "R"),
    Action.LOGIN_SUCCESS: EventCodes(USER_AUTHENTICATION, "E", LOGIN),
    Action.LOGIN_FAILURE: EventCodes(USER_AUTHENTICATION, "E", LOGIN),
    Action.LOGIN_LOCKOUT: EventCodes(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    Action.LOGOUT: EventCodes(USER_AUTHENTICATION, "E", LOGOUT),
    Action.ACCESS_DENIED: EventCodes(SECURITY_ALERT, "E", USE_OF_RESTRICTED_FUNCTION),
    Action.MFA_VERIFY: EventCodes(USER_AUTHENTICATION, "E", LOGIN),
    Action.MFA_ENROL: EventCodes(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    Action.MFA_RECOVERY_CODES: EventCodes(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    Action.TOKEN_USE: EventCodes(USER_AUTHENTICATION, "E", LOGIN),
    Action.TOKEN_CREATE: EventCodes(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    Action.TOKEN_REVOKE: EventCodes(SECURITY_ALERT, "E", USER_SECURITY_ATTRIBUTES_CHANGED),
    Action.ADMIN_CHANGE: EventCodes(SECURITY_ALERT, "E", SECURITY_CONFIGURATION),
    Action.AUDIT_VIEW: EventCodes(AUDIT_LOG_USED, "R"),
    Action.AUDIT_EXPORT: EventCodes(AUDIT_LOG_USED, "R"),
    Action.WORKLIST_VIEW: EventCodes(QUERY, "E"),
    Action.CASE_CREATE: EventCodes(PATIENT_RECORD, "C"),
    Action.CASE_UPDATE: EventCodes(PATIENT_RECORD, "U"),
    Action.CASE_ASSIGN: EventCodes(PATIENT_RECORD, "U"),
    Action.CASE_LOCK: EventCodes(PATIENT_RECORD, "U"),
    Action.CASE_UNLOCK: EventCodes(PATIENT_RECORD, "U"),
    Action.CASE_LOCK_BREAK: EventCodes(PATIENT_RECORD, "U"),
    Action.CASE_CANCEL: EventCodes(PATIENT_RECORD, "U"),
}
# An action added to Action but not here still exports, as generic application activity.
FALLBACK_CODES = EventCodes(APPLICATION_ACTIVITY, "E")

# RFC 3881 EventOutcomeIndicator: 0 success, 4 minor failure (the action did not happen).
OUTCOME_INDICATOR = {Outcome.SUCCESS: "0", Outcome.FAILURE: "4", Outcome.DENIED: "4"}


@functools.cache
def _fqdn() -> str:
    """One resolver lookup per process, not one per exported event."""
    return socket.getfqdn()


def source_id() -> str:
    """This system's name in audit messages and syslog HOSTNAME (settings.AUDIT_SOURCE_ID)."""
    configured = getattr(settings, "AUDIT_SOURCE_ID", "") or _fqdn()
    # RFC 5424 HOSTNAME: 1-255 printable US-ASCII characters, no space.
    cleaned = "".join(ch for ch in configured if 33 <= ord(ch) <= 126)[:255]
    return cleaned or "-"


# --- DICOM audit messages -----------------------------------------------------------------

# Not XML 1.0 Chars: most C0 controls, surrogates, U+FFFE and U+FFFF (DEL is allowed, but
# repositories choke on it). ElementTree writes them as they are and the document is broken.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: str) -> str:
    """XML 1.0 cannot carry these characters even escaped; they become U+FFFD."""
    return _CONTROL.sub("\ufffd", value)


def _coded(parent: ET.Element, tag: str, code: Code) -> ET.Element:
    return ET.SubElement(
        parent,
        tag,
        {
            "csd-code": _xml_text(code.code),
            "codeSystemName": code.scheme,
            "originalText": _xml_text(code.meaning),
        },
    )


def _hl7_escape(value: str) -> str:
    """HL7 v2 escapes for the default delimiters (|^~\\&) inside one CX component."""
    out = value.replace("\\", "\\E\\")
    for char, esc in (("|", "\\F\\"), ("^", "\\S\\"), ("~", "\\R\\"), ("&", "\\T\\")):
        out = out.replace(char, esc)
    return out


def patient_cx(event: AuditEvent) -> str:
    """The patient ID in HL7 CX form (ID^^^assigning authority), as PS3.15 asks."""
    cx = _hl7_escape(event.patient_id)
    if event.patient_issuer:
        cx += "^^^" + _hl7_escape(event.patient_issuer)
    return cx


def audit_message(event: AuditEvent, source: str | None = None) -> ET.Element:
    """One PS3.15 A.5.1 AuditMessage element for one event (`source`: see source_id())."""
    source = source or source_id()
    codes = EVENT_CODES.get(event.action, FALLBACK_CODES)
    message = ET.Element("AuditMessage")

    identification = ET.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": codes.action_code,
            "EventDateTime": event.time.astimezone(UTC).isoformat(),
            "EventOutcomeIndicator": OUTCOME_INDICATOR.get(event.outcome, "4"),
        },
    )
    _coded(identification, "EventID", codes.event_id)
    if codes.event_type is not None:
        _coded(identification, "EventTypeCode", codes.event_type)
    if event.outcome != Outcome.SUCCESS:
        reason = event.detail.get("reason") if isinstance(event.detail, dict) else None
        description = ET.SubElement(identification, "EventOutcomeDescription")
        description.text = _xml_text(f"{event.outcome}: {reason}" if reason else event.outcome)

    # The person (or the username tried), then this application.
    if event.username or event.user_id:
        person = {
            "UserID": _xml_text(event.username or f"user {event.user_id}"),
            "UserIsRequestor": "true",
        }
        if event.user_id:
            person["AlternativeUserID"] = str(event.user_id)
        if event.source_ip:
            person["NetworkAccessPointID"] = event.source_ip
            person["NetworkAccessPointTypeCode"] = "2"
        participant = ET.SubElement(message, "ActiveParticipant", person)
        if event.role:
            role_meaning = event.role
            if event.organization_name:
                role_meaning = f"{event.role} at {event.organization_name}"
            _coded(participant, "RoleIDCode", Code(event.role, "ReadingRoom role", role_meaning))
    application = ET.SubElement(
        message,
        "ActiveParticipant",
        {
            "UserID": getattr(settings, "DICOM_AE_TITLE", "READINGROOM"),
            "AlternativeUserID": "readingroom",
            "UserIsRequestor": "false" if (event.username or event.user_id) else "true",
            "NetworkAccessPointID": source,
            "NetworkAccessPointTypeCode": "1",
        },
    )
    _coded(application, "RoleIDCode", APPLICATION)

    audit_source = ET.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": source})
    site = getattr(settings, "AUDIT_ENTERPRISE_SITE_ID", "")
    if site:
        audit_source.set("AuditEnterpriseSiteID", site)
    ET.SubElement(audit_source, "AuditSourceTypeCode", {"csd-code": "4"})  # application server

    objects: list[ET.Element] = []
    if event.patient_id:
        patient = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": _xml_text(patient_cx(event)),
                "ParticipantObjectTypeCode": "1",  # person
                "ParticipantObjectTypeCodeRole": "1",  # patient
            },
        )
        _coded(patient, "ParticipantObjectIDTypeCode", PATIENT_NUMBER)
        objects.append(patient)
    if event.study_uid:
        study = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": _xml_text(event.study_uid),
                "ParticipantObjectTypeCode": "2",  # system object
                "ParticipantObjectTypeCodeRole": "3",  # report
            },
        )
        _coded(study, "ParticipantObjectIDTypeCode", STUDY_INSTANCE_UID)
        objects.append(study)
    if event.object_type:
        other = ET.SubElement(
            message,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": _xml_text(event.object_id),
                "ParticipantObjectTypeCode": "2",
            },
        )
        _coded(
            other,
            "ParticipantObjectIDTypeCode",
            Code(event.object_type, "ReadingRoom object", event.object_type),
        )
        objects.append(other)
    if event.detail and objects:
        # PS3.15 carries free detail base64-encoded, so no XML can hide in it.
        payload = json.dumps(event.detail, cls=DjangoJSONEncoder, sort_keys=True)
        ET.SubElement(
            objects[-1],
            "ParticipantObjectDetail",
            {"type": "readingroom-detail", "value": base64.b64encode(payload.encode()).decode()},
        )
    return message


def dicom_audit_messages(events: Iterable[AuditEvent]) -> bytes:
    """A UTF-8 XML document: an <AuditMessages> container of one AuditMessage per event."""
    root = ET.Element("AuditMessages")
    source = source_id()
    for event in events:
        root.append(audit_message(event, source))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


# --- RFC 5424 syslog ----------------------------------------------------------------------

FACILITY_AUTHPRIV = 10  # security/authorization messages, as IHE ATNA uses
SEVERITY_NOTICE, SEVERITY_WARNING = 5, 4
# SD-ID name@<IANA private enterprise number>; 32473 is the number RFC 5612 reserves for
# documentation. Deployments set their own with AUDIT_SYSLOG_SD_ID.
DEFAULT_SD_ID = "readingroom@32473"
_SD_SPECIAL = re.compile(r'(["\\\]])')
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\x80-\x9f\u2028\u2029]")


def sd_escape(value: str) -> str:
    """RFC 5424 6.3.3: '"', '\\' and ']' in a PARAM-VALUE get a backslash.

    Control characters (a line feed above all) would split the one-line-per-event file and let
    a crafted username forge a whole log line; they become U+FFFD instead.
    """
    return _SD_SPECIAL.sub(r"\\\1", _LINE_BREAKING.sub("\ufffd", value))


def syslog_line(event: AuditEvent, hostname: str | None = None) -> str:
    """`<PRI>1 TIMESTAMP HOSTNAME readingroom - AUDIT [SD] MSG`, without the line end."""
    severity = SEVERITY_NOTICE if event.outcome == Outcome.SUCCESS else SEVERITY_WARNING
    pri = FACILITY_AUTHPRIV * 8 + severity
    timestamp = event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {
        "id": str(event.pk),
        "action": event.action,
        "outcome": event.outcome,
        "user": event.username,
        "role": event.role,
        "org": event.organization_name,
        "ip": event.source_ip or "",
        "patientId": event.patient_id,
        "patientIssuer": event.patient_issuer,
        "studyUid": event.study_uid,
        "object": event.object_label,
    }
    sd_id = getattr(settings, "AUDIT_SYSLOG_SD_ID", DEFAULT_SD_ID)
    sd = "[" + sd_id + "".join(f' {k}="{sd_escape(v)}"' for k, v in params.items() if v) + "]"
    msg = _LINE_BREAKING.sub(
        "\ufffd", f"{event.get_action_display()} {event.outcome} {event.username or '-'}"
    )
    if not msg.isascii():
        msg = "\ufeff" + msg  # RFC 5424 6.4: a UTF-8 MSG starts with a BOM
    return f"<{pri}>1 {timestamp} {hostname or source_id()} readingroom - AUDIT {sd} {msg}"


def syslog_lines(events: Iterable[AuditEvent]) -> str:
    hostname = source_id()
    return "".join(syslog_line(event, hostname) + "\n" for event in events)
