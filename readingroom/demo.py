"""Demo data: two sending hospitals, a reading group, users, and real DICOM files sent over a
real association to the running SCP (so the demo exercises the production path).

Running it again is harmless: organisations and users are reused, UIDs are derived from
fixed seeds, so re-sent instances are recognised as duplicates.
"""

from __future__ import annotations

import os
import secrets
from base64 import b32encode
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import data_store
import pydicom
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE

from accounts.models import DicomNode, Membership, Organization, ReadingAgreement, Role

UID_PREFIX = "1.2.826.0.1.3680043.10.1188."  # demo root; derived UIDs stay under 64 chars


@dataclass(frozen=True)
class DemoPatient:
    mrn: str
    name: str
    birth_date: str
    sex: str
    mother: str = ""  # Patient's Mother's Birth Name
    phone: str = ""
    address: str = ""


@dataclass(frozen=True)
class DemoStudy:
    sender: str  # calling AE title
    patient: DemoPatient
    seed: str
    study_date: str
    description: str
    accession: str
    files: tuple[str, ...]


# The same child (Mia Carter) carries a different MRN at each hospital: the matcher links
# them (birth date, sex, mother's name, phone agree). Liam is "WILLIAM" at Lakeview with no
# other evidence: a pair for the identity review queue. Arjun and Anika are twins: never linked.
MIA_RIVERSIDE = DemoPatient(
    "RCH-100234",
    "CARTER^MIA^ROSE",
    "20190314",
    "F",
    "BROOKS^DANA",
    "706-555-0142",
    "14 Oak Lane, Athens GA 30605",
)
MIA_LAKEVIEW = DemoPatient(
    "LV-5520981", "CARTER^MIA", "20190314", "F", "BROOKS^DANA", "(706) 555-0142"
)
LIAM = DemoPatient("RCH-100871", "NGUYEN^LIAM", "20240802", "M")
WILLIAM = DemoPatient("LV-5540332", "NGUYEN^WILLIAM", "20240802", "M")
BABY = DemoPatient("RCH-101502", "JOHNSON^BABY GIRL", "20261120", "F", "JOHNSON^KEISHA")
ARJUN = DemoPatient("LV-5531177", "PATEL^ARJUN", "20121130", "M", "SHAH^PRIYA", "412-555-0177")
ANIKA = DemoPatient("LV-5531178", "PATEL^ANIKA", "20121130", "F", "SHAH^PRIYA", "412-555-0177")

OUTSIDE_READ_PDF = "outside-read.pdf"  # generated: a PDF the sending hospital attached

STUDIES = [
    DemoStudy(
        "RIVERSIDE",
        MIA_RIVERSIDE,
        "mia-ct",
        "20261002",
        "CT HEAD WO CONTRAST",
        "RCH2610021",
        ("CT_small.dcm",),
    ),
    DemoStudy(
        "RIVERSIDE",
        MIA_RIVERSIDE,
        "mia-mr-prior",
        "20260615",
        "MR BRAIN WO CONTRAST",
        "RCH2606151",
        ("MR_small.dcm",),
    ),
    DemoStudy(
        "LAKEVIEW",
        MIA_LAKEVIEW,
        "mia-mr",
        "20261120",
        "MR BRAIN WO CONTRAST",
        "LV26112001",
        ("MR_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ),
    DemoStudy(
        "RIVERSIDE",
        LIAM,
        "liam-echo",
        "20261125",
        "ECHO TTE COMPLETE PEDS",
        "RCH2611251",
        ("color3d_jpeg_baseline.dcm", "US1_UNCR.dcm", "test-SR.dcm"),
    ),
    DemoStudy(
        "RIVERSIDE",
        BABY,
        "baby-ecg",
        "20261126",
        "ECG 12 LEAD",
        "RCH2611261",
        ("waveform_ecg.dcm", OUTSIDE_READ_PDF),
    ),
    DemoStudy(
        "LAKEVIEW",
        ARJUN,
        "arjun-ct",
        "20261124",
        "CT CHEST WO CONTRAST",
        "LV26112401",
        ("693_J2KR.dcm",),
    ),
    DemoStudy(
        "LAKEVIEW",
        WILLIAM,
        "william-xr",
        "20261012",
        "US ABDOMEN LIMITED",
        "LV26101201",
        ("US1_J2KR.dcm",),
    ),
    DemoStudy(
        "LAKEVIEW",
        ANIKA,
        "anika-ct",
        "20261124",
        "CT CHEST WO CONTRAST",
        "LV26112402",
        ("CT_small.dcm",),
    ),
]


PYDICOM_DATA_DIRS = (
    Path(pydicom.__file__).parent / "data" / "test_files",
    Path(data_store.__file__).parent / "data",
)


def pydicom_file(name: str) -> Path:
    """A real DICOM file shipped in pydicom or pydicom-data, found without any network access
    (pydicom's own lookup may try to download a file whose hash it does not recognise)."""
    for folder in PYDICOM_DATA_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{name} is not in pydicom's or pydicom-data's files")


def demo_password() -> str:
    """DEMO_PASSWORD, else one generated once and kept (0600) in the data folder."""
    if os.environ.get("DEMO_PASSWORD"):
        return os.environ["DEMO_PASSWORD"]
    path = Path(settings.DATA_DIR) / "demo-password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


REFERRING = {"RIVERSIDE": "OKAFOR^ADA^^^MD", "LAKEVIEW": "CHEN^WEI^^^MD"}


@dataclass(frozen=True)
class Persona:
    username: str
    role: str
    org_slug: str
    description: str
    subspecialties: tuple[str, ...] = ()
    licensed_states: tuple[str, ...] = ()
    credentialed: tuple[str, ...] = ()
    provider_ids: tuple[str, ...] = ()


PERSONAS = [
    Persona(
        "reader",
        Role.READER,
        "northstar-peds",
        "reader, pediatric cardiology, GA+PA",
        ("pediatric_cardiology",),
        ("GA", "PA"),
        ("riverside", "lakeview"),
    ),
    Persona(
        "reader2",
        Role.READER,
        "northstar-peds",
        "reader, pediatric radiology, GA only",
        ("pediatric_radiology",),
        ("GA",),
        ("riverside",),
    ),
    Persona("scheduler", Role.SCHEDULER, "northstar-peds", "scheduler"),
    Persona(
        "referrer",
        Role.REFERRING,
        "riverside",
        "referring physician, Riverside",
        provider_ids=(REFERRING["RIVERSIDE"],),
    ),
    Persona(
        "referrer2",
        Role.REFERRING,
        "lakeview",
        "referring physician, Lakeview",
        provider_ids=(REFERRING["LAKEVIEW"],),
    ),
    Persona("tech", Role.TECHNOLOGIST, "riverside", "technologist, Riverside"),
    Persona("orgadmin", Role.ORG_ADMIN, "northstar-peds", "org admin, reading group"),
    Persona("admin", Role.ADMIN, "platform", "platform admin"),
]


@transaction.atomic
def create_organisations_and_users() -> dict[str, str]:
    """Create (or reuse) the demo tenants, agreements and personas; returns {username: role}."""
    kinds = Organization.Kind
    orgs = {}
    for slug, name, state, kind in (
        ("riverside", "Riverside Community Hospital", "GA", kinds.SENDING_FACILITY),
        ("lakeview", "Lakeview Regional Medical Center", "PA", kinds.SENDING_FACILITY),
        ("northstar-peds", "Northstar Pediatric Imaging", "PA", kinds.READING_GROUP),
        ("platform", "ReadingRoom Platform", "", kinds.PLATFORM),
    ):
        orgs[slug], _ = Organization.objects.get_or_create(
            slug=slug, defaults={"name": name, "us_state": state, "kind": kind}
        )
    for slug, ae_title in (("riverside", "RIVERSIDE"), ("lakeview", "LAKEVIEW")):
        DicomNode.objects.get_or_create(
            ae_title=ae_title,
            defaults={
                "organization": orgs[slug],
                "host": "127.0.0.1",
                "enabled": True,
                "description": f"{orgs[slug].name} PACS",
            },
        )
        ReadingAgreement.objects.get_or_create(
            reading_group=orgs["northstar-peds"], sending_facility=orgs[slug]
        )
    from reports.catalog import install_shipped
    from reports.models import ReportTemplate
    from viewer.hanging_defaults import install_defaults
    from viewer.models import HangingProtocol

    install_defaults(HangingProtocol)
    install_shipped(ReportTemplate)
    _worklist_rules(orgs)
    password = demo_password()
    User = get_user_model()
    users = {}
    for persona in PERSONAS:
        superuser = persona.role == Role.ADMIN
        user, created = User.objects.get_or_create(
            username=persona.username,
            defaults={
                "is_staff": superuser,
                "is_superuser": superuser,
                "email": f"{persona.username}@readingroom.example",
            },
        )
        if created or not user.check_password(password):
            user.set_password(password)
            user.save()
        membership, _ = Membership.objects.update_or_create(
            user=user,
            organization=orgs[persona.org_slug],
            role=persona.role,
            defaults={
                "subspecialties": list(persona.subspecialties),
                "licensed_states": list(persona.licensed_states),
                "provider_ids": list(persona.provider_ids),
            },
        )
        membership.credentialed_facilities.set([orgs[slug] for slug in persona.credentialed])
        users[persona.username] = persona.description
    return users


def _worklist_rules(orgs: dict[str, Organization]) -> None:
    """Routing for the demo worklist: echo and ECG go to pediatric cardiology (urgent); a CT
    head from Riverside is STAT with a 30-minute SLA; everything else is routine."""
    from worklist.models import GroupSettings, Priority, RoutingRule

    GroupSettings.objects.get_or_create(reading_group=orgs["northstar-peds"])
    for name, defaults in (
        (
            "Echo to pediatric cardiology",
            {"position": 10, "procedure_contains": "ECHO", "priority": Priority.URGENT},
        ),
        (
            "ECG to pediatric cardiology",
            {"position": 20, "modality": "ECG", "priority": Priority.URGENT},
        ),
        (
            "Riverside CT head is STAT",
            {
                "position": 30,
                "sending_facility": orgs["riverside"],
                "modality": "CT",
                "procedure_contains": "HEAD",
                "priority": Priority.STAT,
                "sla_minutes": 30,
                "subspecialty": "pediatric_radiology",
            },
        ),
    ):
        if "cardiology" in name:
            defaults["subspecialty"] = "pediatric_cardiology"
        RoutingRule.objects.get_or_create(
            name=name, defaults={**defaults, "reading_group": orgs["northstar-peds"]}
        )


DEMO_DEVICE_NAME = "demo authenticator"


def enrol_demo_mfa() -> dict[str, str]:
    """Give every demo user who needs MFA a confirmed TOTP device (reused on later runs) and
    write the secrets to the data folder (0600). Demo only: real users enrol themselves."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts import mfa

    secrets_by_user = {}
    for user in get_user_model().objects.filter(username__in=[p.username for p in PERSONAS]):
        if not mfa.requires_mfa(user):
            continue
        device = TOTPDevice.objects.filter(user=user, name=DEMO_DEVICE_NAME).first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name=DEMO_DEVICE_NAME, confirmed=True)
        secrets_by_user[user.username] = b32encode(device.bin_key).decode().rstrip("=")
    path = Path(settings.DATA_DIR) / "demo-totp-secrets"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(f"{user} {secret}\n" for user, secret in sorted(secrets_by_user.items()))
    return secrets_by_user


def login_lines(users: dict[str, str]) -> list[str]:
    """What `serve --demo` and `demo` print: logins, MFA secrets and how to get a code."""
    password = demo_password()
    secrets_by_user = enrol_demo_mfa()
    lines = []
    for username, description in users.items():
        line = f"{username} / {password} ({description})"
        if username in secrets_by_user:
            line += f", TOTP secret {secrets_by_user[username]}"
        lines.append(line)
    return lines


MFA_HINT = "current code of a demo user's authenticator: manage.py demo_code USERNAME"


def demo_datasets():
    """Yield (calling AE, dataset) pairs: real pydicom files with demo patients and UIDs."""
    for study in STUDIES:
        study_uid = generate_uid(UID_PREFIX, entropy_srcs=[study.seed])
        for index, name in enumerate(study.files, start=1):
            ds = (
                outside_read_pdf(study) if name == OUTSIDE_READ_PDF else dcmread(pydicom_file(name))
            )
            ds.PatientID = study.patient.mrn
            ds.PatientName = study.patient.name
            ds.PatientBirthDate = study.patient.birth_date
            ds.PatientSex = study.patient.sex
            for keyword, value in (
                ("PatientMotherBirthName", study.patient.mother),
                ("PatientTelephoneNumbers", study.patient.phone),
                ("PatientAddress", study.patient.address),
            ):
                if value:
                    setattr(ds, keyword, value)
                elif keyword in ds:
                    delattr(ds, keyword)
            for keyword in ("OtherPatientIDs", "OtherPatientIDsSequence", "IssuerOfPatientID"):
                if keyword in ds:
                    delattr(ds, keyword)
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[study.seed, name])
            ds.SOPInstanceUID = generate_uid(UID_PREFIX, entropy_srcs=[study.seed, name, "sop"])
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.StudyDate = study.study_date
            ds.SeriesDate = study.study_date
            ds.StudyDescription = study.description
            ds.AccessionNumber = study.accession
            ds.SeriesNumber = index
            ds.InstitutionName = {
                "RIVERSIDE": "Riverside Community Hospital",
                "LAKEVIEW": "Lakeview Regional Medical Center",
            }[study.sender]
            ds.ReferringPhysicianName = REFERRING[study.sender]
            yield study.sender, ds


def outside_read_pdf(study: DemoStudy):
    """An Encapsulated PDF as a hospital's ECG cart attaches it (made with fpdf2)."""
    from fpdf import FPDF

    from archive.documents import encapsulated_pdf

    pdf = FPDF(format="letter")
    pdf.set_creation_date(datetime(2026, 11, 26, tzinfo=UTC))  # same bytes on every run
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(
        0, 10, "Riverside Community Hospital - ECG cart printout", new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("helvetica", size=12)
    for line in (
        f"Exam: {study.description}   Date: {study.study_date}",
        "Machine interpretation (unconfirmed): sinus rhythm, rate 142 bpm.",
        "Normal axis for age. No pre-excitation.",
        "To be over-read by pediatric cardiology.",
    ):
        pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
    return encapsulated_pdf(bytes(pdf.output()), Dataset(), "ECG cart printout")


def send_demo_studies(host: str, port: int) -> dict[str, int]:
    """C-STORE every demo dataset to the SCP, one association per sending hospital."""
    by_sender: dict[str, list] = {}
    for sender, ds in demo_datasets():
        by_sender.setdefault(sender, []).append(ds)
    results = {"success": 0, "failure": 0}
    for sender, datasets in by_sender.items():
        ae = AE(ae_title=sender)
        ae.maximum_pdu_size = 131072
        contexts = {(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID) for ds in datasets}
        for sop_class, ts in sorted(contexts):
            ae.add_requested_context(sop_class, ts)
        assoc = ae.associate(host, port, ae_title=settings.DICOM_AE_TITLE)
        if not assoc.is_established:
            raise RuntimeError(f"the SCP at {host}:{port} refused the association from {sender}")
        try:
            for ds in datasets:
                status = assoc.send_c_store(ds)
                ok = status is not None and status.get("Status") == 0x0000
                results["success" if ok else "failure"] += 1
        finally:
            assoc.release()
    return results


def sign_demo_report() -> str:
    """Mia's June MR brain at Riverside, reported and signed final by the demo radiologist
    (`reader2`) through the real sign-off (password and TOTP), so the referring portal has a
    report, the study carries its PDF and SR, and `referrer` has a notification. Idempotent."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from archive.models import Study
    from reports import services

    study_uid = generate_uid(UID_PREFIX, entropy_srcs=["mia-mr-prior"])
    study = Study.objects.filter(study_instance_uid=study_uid).first()
    radiologist = get_user_model().objects.filter(username="reader2").first()
    device = TOTPDevice.objects.filter(user=radiologist, name=DEMO_DEVICE_NAME).first()
    if study is None or device is None:
        return "demo report: study or signer missing"
    report = services.open_report(radiologist, study)
    if report.status != "draft":
        return f"demo report: {report.status}"
    services.save_draft(
        radiologist,
        report,
        {
            "clinical_history": "Headaches for three months.",
            "height_cm": "122",
            "weight_kg": "23",
            "values": {"impression": "Normal MR of the brain for age."},
        },
    )
    services.sign(radiologist, report, "final", demo_password(), f"{totp(device.bin_key):06d}")
    return "demo report: signed final (Mia Carter, MR brain of June, by reader2)"
