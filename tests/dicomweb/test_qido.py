"""QIDO-RS matching over the index: every matching rule of PS3.4 C.2.2.2 that PS3.18 asks for,
paging, includefield, nested resources, errors, and the tenant boundary."""

from __future__ import annotations

import pytest

from audit.models import Action, AuditEvent
from tests.dicomweb.conftest import ingest, part10

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def studies(riverside, lakeview):
    a = {"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.1", "PatientID": "MRN-100"}
    ingest(
        part10(
            "CT_small.dcm",
            **a,
            SeriesInstanceUID="1.2.826.0.1.3680043.8.498.11",
            PatientName="Doe^Jane",
            StudyDate="20240105",
            StudyTime="101500",
            AccessionNumber="ACC100",
            StudyDescription="CT HEAD",
            SeriesNumber=1,
            ReferringPhysicianName="House^Gregory",
        ),
        riverside,
    )
    ingest(
        part10(
            "MR_small.dcm",
            **a,
            SeriesInstanceUID="1.2.826.0.1.3680043.8.498.12",
            PatientName="Doe^Jane",
            StudyDate="20240105",
            StudyTime="101500",
            AccessionNumber="ACC100",
            SeriesNumber=2,
        ),
        riverside,
    )
    ingest(
        part10(
            "MR_small.dcm",
            StudyInstanceUID="1.2.826.0.1.3680043.8.498.2",
            PatientID="MRN-200",
            PatientName="DOE^JOHN",
            StudyDate="20240220",
            StudyTime="143000",
            AccessionNumber="ACC200",
        ),
        riverside,
    )
    ingest(
        part10(
            "US1_UNCR.dcm",
            StudyInstanceUID="1.2.826.0.1.3680043.8.498.3",
            PatientID="MRN-300",
            PatientName="SMITH^ANNA",
            StudyDate="20231231",
            StudyTime="080000",
            AccessionNumber="XYZ300",
        ),
        riverside,
    )
    # The same MRN at another hospital: another child as far as Riverside's staff can tell.
    ingest(
        part10(
            "CT_small.dcm",
            StudyInstanceUID="1.2.826.0.1.3680043.8.498.4",
            PatientID="MRN-100",
            PatientName="ROE^RICHARD",
            StudyDate="20240110",
        ),
        lakeview,
    )


def uids(response) -> list[str]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    return [item["0020000D"]["Value"][0] for item in response.json()]


def study(n: int) -> str:
    return f"1.2.826.0.1.3680043.8.498.{n}"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"PatientID": "MRN-100"}, [1]),
        ({"00100020": "MRN-100"}, [1]),  # a tag instead of a keyword
        ({"PatientName": "doe*"}, [2, 1]),  # case-insensitive PN
        ({"PatientName": "DOE^JAN?"}, [1]),
        ({"PatientName": "Doe^Jane"}, [1]),
        ({"PatientName": "john", "fuzzymatching": "true"}, [2]),
        ({"PatientName": "john"}, []),
        ({"StudyDate": "20240105"}, [1]),
        ({"StudyDate": "20240101-20240131"}, [1]),
        ({"StudyDate": "-20240131"}, [1, 3]),
        ({"StudyDate": "20240201-"}, [2]),
        ({"StudyTime": "1000-1200"}, [1]),
        ({"StudyTime": "14"}, [2]),
        ({"StudyInstanceUID": f"{study(1)},{study(3)}"}, [1, 3]),
        ({"StudyInstanceUID": f"{study(1)}\\{study(2)}"}, [2, 1]),
        ({"AccessionNumber": "ACC*"}, [2, 1]),
        ({"AccessionNumber": "ACC?00"}, [2, 1]),
        ({"AccessionNumber": "ACC%"}, []),  # SQL wildcards are literal text
        ({"AccessionNumber": "ACC_00"}, []),
        ({"AccessionNumber": "acc*"}, []),  # wildcard matching is case-sensitive (not PN)
        ({"PatientID": "mrn-1?0"}, []),
        ({"PatientID": "MRN-[12]00"}, []),  # no character classes: [ is literal
        ({"ModalitiesInStudy": "MR"}, [2, 1]),
        ({"ModalitiesInStudy": "US"}, [3]),
        ({"ModalitiesInStudy": "CT,US"}, [1, 3]),
        ({"ReferringPhysicianName": "house*"}, [1]),
        ({"PatientID": "MRN-100", "StudyDate": "20240201-"}, []),
        ({"PatientID": ""}, [2, 1, 3]),  # universal matching
    ],
)
def test_study_matching(tech, studies, query, expected):
    assert uids(tech.get("/dicomweb/studies", data=query)) == [study(n) for n in expected]


def test_study_attributes_counts_and_includefield(tech, studies):
    (item,) = tech.get("/dicomweb/studies", {"PatientID": "MRN-100"}).json()
    assert item["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert item["00080020"] == {"vr": "DA", "Value": ["20240105"]}
    assert item["00080030"] == {"vr": "TM", "Value": ["101500"]}
    assert item["00080061"]["Value"] == ["CT", "MR"]
    assert item["00201206"]["Value"] == [2] and item["00201208"]["Value"] == [2]
    assert item["00081190"]["Value"] == [f"http://testserver/dicomweb/studies/{study(1)}"]
    assert item["00080056"]["Value"] == ["ONLINE"]
    (other,) = item["00101002"]["Value"]  # the enterprise identity beside the hospital MRN
    assert other["00100020"]["Value"][0].startswith("RR-")
    assert other["00100021"]["Value"] == ["READINGROOM"]
    assert "00081030" not in item  # StudyDescription only on request
    (item,) = tech.get(
        "/dicomweb/studies", {"PatientID": "MRN-100", "includefield": "StudyDescription"}
    ).json()
    assert item["00081030"]["Value"] == ["CT HEAD"]
    (item,) = tech.get("/dicomweb/studies", {"PatientID": "MRN-100", "includefield": "all"}).json()
    assert {"00081030", "00080080", "00100021"} <= item.keys()


def test_paging_newest_first(tech, studies):
    assert uids(tech.get("/dicomweb/studies", {"limit": "2"})) == [study(2), study(1)]
    assert uids(tech.get("/dicomweb/studies", {"limit": "1", "offset": "1"})) == [study(1)]
    assert uids(tech.get("/dicomweb/studies", {"offset": "3"})) == []


def test_series_and_instances(tech, studies):
    response = tech.get(f"/dicomweb/studies/{study(1)}/series")
    items = response.json()
    assert [i["00080060"]["Value"][0] for i in items] == ["CT", "MR"]
    assert all(i["00201209"]["Value"] == [1] for i in items)
    assert "00100010" not in items[0]  # scoped to the study: no study attributes
    assert len(tech.get(f"/dicomweb/studies/{study(1)}/series", {"Modality": "MR"}).json()) == 1
    everywhere = tech.get("/dicomweb/series", {"Modality": "CT"}).json()
    assert [i["0020000D"]["Value"][0] for i in everywhere] == [study(1)]  # not Lakeview's
    assert everywhere[0]["00100020"]["Value"] == ["MRN-100"]  # unscoped: study attributes
    series_uid = "1.2.826.0.1.3680043.8.498.11"
    (instance,) = tech.get(f"/dicomweb/studies/{study(1)}/series/{series_uid}/instances").json()
    assert instance["00080016"]["Value"] == [CT]
    assert instance["00280010"]["Value"] == [128] and instance["00280100"]["Value"] == [16]
    assert instance["00081190"]["Value"][0].endswith(
        f"/series/{series_uid}/instances/{instance['00080018']['Value'][0]}"
    )
    by_class = tech.get("/dicomweb/instances", {"SOPClassUID": CT}).json()
    assert [i["0020000D"]["Value"][0] for i in by_class] == [study(1)]
    assert len(tech.get(f"/dicomweb/studies/{study(1)}/instances").json()) == 2


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"Foo": "1"}, "not a DICOM keyword"),
        ({"StudyDate": "2024"}, "YYYYMMDD"),
        ({"StudyDate": "20240230"}, "not a calendar date"),
        ({"StudyDate": "-"}, "at least one end"),
        ({"StudyTime": "25"}, "not a time of day"),
        ({"limit": "-1"}, "non-negative integer"),
        ({"offset": "x"}, "non-negative integer"),
        ({"fuzzymatching": "maybe"}, "true or false"),
        ({"StudyInstanceUID": "1.2.abc"}, "UID"),
        ({"ModalitiesInStudy": "C'T"}, "modality codes"),
        ({"includefield": "NotAThing"}, "not a DICOM keyword"),
        # str.isdigit() takes superscripts, which int() then refuses: was a 500.
        ({"limit": "\u00b2"}, "non-negative integer"),
        ({"offset": "\u0661"}, "non-negative integer"),
        # Digits of other scripts are not DICOM's DA/TM digits (int() would read them).
        ({"StudyDate": "\u0662\u0660\u0662\u0664\u0660\u0661\u0660\u0661"}, "YYYYMMDD"),
        ({"StudyTime": "\uff11\uff10"}, "HHMMSS"),
        # Past what the databases' integers hold: was a 500 on SQLite and PostgreSQL.
        ({"offset": "9" * 23}, "offset"),
        # PostgreSQL text cannot hold NUL: was a 500 there (DataError).
        ({"PatientID": "MRN\x00100"}, "control character"),
        ({"AccessionNumber": "\x00"}, "control character"),
        ({"PatientName": "Doe\x00*"}, "control character"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(tech, studies, query, reason):
    response = tech.get("/dicomweb/studies", query)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_repeated_key_and_series_number(tech, studies):
    response = tech.get("/dicomweb/studies?PatientID=a&PatientID=b")
    assert response.status_code == 400 and "more than once" in response.json()["error"]
    response = tech.get(f"/dicomweb/studies/{study(1)}/series", {"SeriesNumber": "one"})
    assert response.status_code == 400 and "integer" in response.json()["error"]
    # An Arabic-Indic one is not an IS value (int() would read it as 1).
    response = tech.get(f"/dicomweb/studies/{study(1)}/series", {"SeriesNumber": "\u0661"})
    assert response.status_code == 400 and "integer" in response.json()["error"]


def test_unindexed_attributes_warn_instead_of_failing(tech, studies):
    response = tech.get(
        "/dicomweb/studies", {"PatientID": "MRN-100", "includefield": "PatientComments"}
    )
    assert response.status_code == 200
    assert "PatientComments" in response["Warning"] and response["Warning"].startswith("299 ")
    response = tech.get("/dicomweb/studies", {"PatientComments": "x"})
    assert response.status_code == 200 and "ignored" in response["Warning"]


def test_limit_is_capped_with_a_warning(tech, studies):
    response = tech.get("/dicomweb/studies", {"limit": "100000"})
    assert response.status_code == 200 and "maximum" in response["Warning"]


def test_only_json_is_produced(tech, studies):
    response = tech.get("/dicomweb/studies", HTTP_ACCEPT="application/dicom+xml")
    assert response.status_code == 406


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        # RFC 2231 parameters (`name*=charset''value`): were a 500 (the value is a tuple).
        ("application/dicom+json; q*=utf-8''0.5", 200),
        ("application/dicom+xml; q*=utf-8''1, application/dicom+json; q=0.5", 200),
        # q=0 is "not acceptable" (RFC 9110 12.4.2), not "acceptable, last".
        ("application/dicom+json; q=0", 406),
    ],
)
def test_accept_header_parameters(tech, studies, accept, status):
    assert tech.get("/dicomweb/studies", HTTP_ACCEPT=accept).status_code == status


def test_tenant_boundary_and_audit(tech, outsider, studies):
    assert uids(outsider.get("/dicomweb/studies")) == [study(4)]
    assert uids(outsider.get("/dicomweb/studies", {"PatientID": "MRN-100"})) == [study(4)]
    for path in (f"/dicomweb/studies/{study(1)}/series", f"/dicomweb/studies/{study(1)}/instances"):
        assert outsider.get(path).status_code == 404
    assert AuditEvent.objects.filter(action=Action.STUDY_SEARCH, user=outsider.user).exists()
    assert AuditEvent.objects.filter(action=Action.ACCESS_DENIED, user=outsider.user).exists()


def test_no_credentials_is_401(studies, client):
    response = client.get("/dicomweb/studies")
    assert response.status_code == 401
