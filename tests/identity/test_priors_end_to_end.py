"""End to end: two hospitals send the same child under different MRNs with dcmtk's storescu;
after matching, a reader who reads for one hospital finds the other's study as a prior."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from pydicom import dcmread

from accounts.models import Membership, Organization, ReadingAgreement, Role
from accounts.policy import visible_studies
from archive.models import Study
from identity.models import PatientRecord
from tests.conftest import storescu, wait_for
from tests.dicomweb.conftest import part10

pytestmark = pytest.mark.interop


def write(tmp_path, name: str, **attributes) -> str:
    path = tmp_path / name
    path.write_bytes(part10("CT_small.dcm", **attributes))
    return str(path)


def test_priors_across_hospitals_after_matching(
    scp, riverside, lakeview, tmp_path, celery_worker_process
):
    child = {
        "PatientBirthDate": "20200602",
        "PatientSex": "M",
        "PatientMotherBirthName": "OKAFOR^ADAEZE",
        "PatientTelephoneNumbers": "404-555-0199",
    }
    first = write(tmp_path, "lv.dcm", PatientID="LV-77", PatientName="OKAFOR^CHIDI", **child)
    second = write(tmp_path, "rch.dcm", PatientID="RCH-5", PatientName="Okafor^Chidi^E", **child)
    assert (
        "Received Store Response (Success)"
        in storescu(scp, first, aet="LAKEVIEW", extra=("-v",)).stderr
    )
    assert (
        "Received Store Response (Success)"
        in storescu(scp, second, aet="RIVERSIDE", extra=("-v",)).stderr
    )

    def linked() -> bool:
        ids = set(PatientRecord.objects.values_list("person_id", flat=True))
        return PatientRecord.objects.count() == 2 and len(ids) == 1

    wait_for(linked, timeout=30)
    group = Organization.objects.create(
        name="Northstar", slug="northstar", kind=Organization.Kind.READING_GROUP
    )
    ReadingAgreement.objects.create(reading_group=group, sending_facility=riverside)
    reader = get_user_model().objects.create_user("reader")
    Membership.objects.create(user=reader, organization=group, role=Role.READER)
    current = Study.objects.get(organization=riverside)
    prior = Study.objects.get(organization=lakeview)
    visible = visible_studies(reader)
    assert visible.filter(pk=current.pk).exists()
    assert visible.filter(pk=prior.pk).exists()  # through the enterprise person
    assert dcmread(first).PatientID == "LV-77"  # the stored files are never rewritten
