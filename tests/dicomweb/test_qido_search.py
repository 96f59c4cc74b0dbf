"""How QIDO-RS searches are answered: one SQL query per search, counts that follow what the
archive holds (re-sends, new versions, later series, linked patients), pages counted on their
own, and the index the newest-first order and the date ranges rely on."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from archive.dicomweb import search
from archive.dicomweb.attributes import Level, as_json, attributes_for
from archive.dicomweb.query import parse
from archive.models import Study
from identity.models import PatientRecord
from identity.services import link_records
from tests.dicomweb.conftest import ingest, part10

ROOT = "1.2.826.0.1.3680043.8.498.77"
COUNTS = ("00201206", "00201208")  # Number of Study Related Series / Instances


def uid(*parts: int) -> str:
    return ".".join([ROOT, *map(str, parts)])


def counts(tech, study: int) -> tuple[int, int]:
    (item,) = tech.get("/dicomweb/studies", {"StudyInstanceUID": uid(study)}).json()
    return tuple(item[tag]["Value"][0] for tag in COUNTS)


def series_counts(tech, study: int) -> dict[str, int]:
    items = tech.get(f"/dicomweb/studies/{uid(study)}/series").json()
    return {i["0020000E"]["Value"][0]: i["00201209"]["Value"][0] for i in items}


def ct(study: int, series: int, sop: int, **extra) -> bytes:
    return part10(
        "CT_small.dcm",
        StudyInstanceUID=uid(study),
        SeriesInstanceUID=uid(study, series),
        SOPInstanceUID=uid(study, series, sop),
        PatientID=extra.pop("PatientID", f"MRN-{study}"),
        **extra,
    )


def test_counts_follow_resends_new_versions_and_later_series(tech, riverside):
    first = ct(1, 1, 1)
    ingest(first, riverside)
    assert counts(tech, 1) == (1, 1)
    assert ingest(first, riverside).code == "duplicate"
    assert counts(tech, 1) == (1, 1)
    # Other bytes under the same SOP Instance UID: a new version, still one instance.
    assert ingest(ct(1, 1, 1, StudyDescription="CT HEAD v2"), riverside).code == "new_version"
    assert counts(tech, 1) == (1, 1)
    ingest(ct(1, 1, 2), riverside)
    ingest(ct(1, 2, 1), riverside)
    assert counts(tech, 1) == (2, 3)
    assert series_counts(tech, 1) == {uid(1, 1): 2, uid(1, 2): 1}


def test_linking_patients_keeps_counts_and_shows_the_enterprise_identity(tech, riverside):
    ingest(ct(1, 1, 1, PatientName="DOE^MIA"), riverside)
    ingest(ct(2, 1, 1, PatientName="DOE^MIA", PatientID="MRN-OTHER"), riverside)
    ingest(ct(2, 1, 2, PatientName="DOE^MIA", PatientID="MRN-OTHER"), riverside)
    a = PatientRecord.objects.get(patient_id="MRN-1")
    b = PatientRecord.objects.get(patient_id="MRN-OTHER")
    if a.person_id == b.person_id:  # the matcher may have linked them already
        target = a.person_id
    else:
        link_records(a, b, tech.user)
        target = PatientRecord.objects.get(pk=a.pk).person_id
    items = tech.get("/dicomweb/studies", {"PatientName": "doe^mia"}).json()
    assert sorted(tuple(i[t]["Value"][0] for t in COUNTS) for i in items) == [(1, 1), (1, 2)]
    for item in items:
        (other,) = item["00101002"]["Value"]
        assert other["00100020"]["Value"] == [f"RR-{target:08d}"]


def test_each_page_is_counted_on_its_own(tech, riverside):
    for n in range(1, 6):
        for sop in range(1, n + 1):
            ingest(ct(n, 1, sop, StudyDate=f"2024010{n}"), riverside)
    pages = [
        tech.get("/dicomweb/studies", {"limit": "2", "offset": str(offset)}).json()
        for offset in (0, 2, 4)
    ]
    got = [(i["0020000D"]["Value"][0], i["00201208"]["Value"][0]) for p in pages for i in p]
    assert got == [(uid(n), n) for n in (5, 4, 3, 2, 1)]


@pytest.mark.parametrize("limit", [1, 50])
def test_one_query_per_search_whatever_the_page_size(tech, riverside, limit):
    for n in range(1, 8):
        ingest(ct(n, 1, 1), riverside)
        ingest(ct(n, 2, 1), riverside)
    for level, run in (
        (Level.STUDY, lambda q: search.search_studies(Study.objects.all(), q, "http://x")),
        (Level.SERIES, lambda q: search.search_series(Study.objects.all(), q, "http://x", None)),
        (
            Level.INSTANCE,
            lambda q: search.search_instances(Study.objects.all(), q, "http://x", None, None),
        ),
    ):
        query = parse(QueryDict(f"limit={limit}&includefield=all"), level)
        with CaptureQueriesContext(connection) as queries:
            results = run(query)
        assert len(results) == min(limit, 7 if level == Level.STUDY else 14)
        assert len(queries) == 1, [q["sql"] for q in queries]


def test_json_is_what_the_model_says(tech, riverside):
    """Rows read with .values() give the same DICOM JSON the model rows gave."""
    ingest(
        ct(
            1,
            1,
            1,
            PatientName="Doe^Jane",
            StudyDate="20240105",
            StudyTime="101500",
            PatientWeight="12.5",
            BodyPartExamined="HEAD",
            StudyDescription="",
        ),
        riverside,
    )
    mr = part10("MR_small.dcm", StudyInstanceUID=uid(1), PatientID="MRN-1", PatientName="Doe^Jane")
    ingest(mr, riverside)
    (item,) = tech.get("/dicomweb/studies", {"includefield": "all"}).json()
    assert item["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert item["00080030"] == {"vr": "TM", "Value": ["101500"]}
    assert item["00101030"] == {"vr": "DS", "Value": [12.5]}
    assert item["00080061"] == {"vr": "CS", "Value": ["CT", "MR"]}
    assert item["00180015"]["Value"][0] == "HEAD"
    assert item["00081030"] == {"vr": "LO"}  # empty: the VR only
    assert list(item) == sorted(item)


def plan(query_string: str) -> str:
    query = parse(QueryDict(query_string), Level.STUDY)
    order = search.STUDY_MODALITY_ORDER if query.modality else search.STUDY_ORDER
    page = search._page(query.apply(Study.objects.all()), order, query)
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(row[3] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan text")
@pytest.mark.django_db
def test_newest_first_and_date_ranges_read_the_order_index():
    """The page is read in index order (no sort of every match): unfiltered, and a StudyDate
    range, which the index's leading column serves."""
    for query_string in ("limit=100", "StudyDate=20190101-20190331&limit=100"):
        text = plan(query_string)
        assert "study_qido_order" in text, text
        assert "TEMP B-TREE" not in text, text


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan text")
@pytest.mark.django_db
def test_one_modality_walks_that_modality_index_in_order():
    """ModalitiesInStudy=NM reads the NM entries of the StudyModality index newest first and
    stops at the page: neither a walk of every study testing its codes nor a sort."""
    text = plan("ModalitiesInStudy=NM&limit=100")
    assert "studymodality_qido_order (modality=?)" in text, text
    assert "TEMP B-TREE" not in text, text
    assert "study_qido_order" not in text, text


def test_one_modality_pages_like_the_study_order(tech, riverside):
    """A one-code search (the StudyModality index) answers the same studies in the same order,
    page by page, as the same code matched on the study's own value (the path a list of codes
    takes): newest study date and time first, then the newest row."""
    dates = ["20240105", "20190301", "20240105", "", "20210720", "20240105"]
    times = ["101500", "090000", "101500", "", "235959", "083000"]
    for n, (date, time) in enumerate(zip(dates, times, strict=True), start=1):
        ingest(ct(n, 1, 1, StudyDate=date, StudyTime=time), riverside)
        if n % 2:
            ingest(ct(n, 2, 1, Modality="NM", StudyDate=date, StudyTime=time), riverside)
    ingest(ct(99, 1, 1, Modality="MR"), riverside)

    def page(value: str, offset: int, limit: int) -> list[str]:
        params = {"ModalitiesInStudy": value, "offset": offset, "limit": limit}
        return [i["0020000D"]["Value"][0] for i in tech.get("/dicomweb/studies", params).json()]

    # 'ZZ' matches nothing: with it the list takes the study's own value.
    assert page("CT", 0, 10) == page("CT,ZZ", 0, 10)
    assert len(page("CT", 0, 10)) == 6
    assert page("CT", 2, 3) == page("CT,ZZ", 2, 3) == page("CT", 0, 10)[2:5]
    assert page("NM", 0, 10) == page("NM,ZZ", 0, 10)
    assert sorted(page("NM", 0, 10)) == [uid(1), uid(3), uid(5)]
    assert page("MR", 0, 10) == [uid(99)]


def test_ingest_keeps_one_index_entry_per_code(riverside):
    """Each new code of a study adds one StudyModality entry with the study's date and time;
    more series or instances of a code already there add none."""
    ingest(ct(1, 1, 1, StudyDate="20230405", StudyTime="071500"), riverside)
    ingest(ct(1, 1, 2), riverside)
    ingest(ct(1, 2, 1, Modality="SR"), riverside)
    ingest(ct(1, 3, 1, Modality="SR"), riverside)
    study = Study.objects.get(study_instance_uid=uid(1))
    entries = study.modality_entries.order_by("pk")
    assert [(e.modality, str(e.study_date), str(e.study_time)) for e in entries] == [
        ("CT", "2023-04-05", "07:15:00"),
        ("SR", "2023-04-05", "07:15:00"),
    ]
    assert study.modality_list == ["CT", "SR"]


def test_modalities_in_study_matches_whole_codes_of_any_series(tech, riverside):
    """ModalitiesInStudy matches the value QIDO returns for the study, code by code: a later
    series' modality counts, part of a code does not, and '_' is a character, not a
    wildcard."""
    ingest(ct(1, 1, 1), riverside)
    ingest(ct(1, 2, 1, Modality="SR"), riverside)
    ingest(ct(2, 1, 1, Modality="OT"), riverside)
    ingest(ct(3, 1, 1, Modality="O_"), riverside)

    def found(value: str, path: str = "/dicomweb/studies") -> set[str]:
        items = tech.get(path, {"ModalitiesInStudy": value}).json()
        return {item["0020000D"]["Value"][0] for item in items}

    assert found("SR") == found("CT") == {uid(1)}
    assert found("CT,OT") == {uid(1), uid(2)}
    assert found("C") == found("T") == found("TS") == set()
    assert found("CT\\SR") == {uid(1)}  # a backslash separates values, as a comma does
    assert found("O_") == {uid(3)}
    assert found("OT") == {uid(2)}
    # Series of the studies that hold an SR (QIDO's study-level key at the series level).
    items = tech.get("/dicomweb/series", {"ModalitiesInStudy": "SR"}).json()
    assert sorted(i["0020000E"]["Value"][0] for i in items) == [uid(1, 1), uid(1, 2)]


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("StudyDate", datetime.date(2024, 1, 5), "20240105"),
        ("StudyDate", datetime.date(999, 12, 31), "09991231"),
        ("StudyTime", datetime.time(10, 15), "101500"),
        ("StudyTime", datetime.time(0, 0, 0, 120), "000000.000120"),
    ],
)
def test_dates_and_times_are_encoded_as_dicom_da_and_tm(keyword, value, expected):
    attribute = attributes_for(Level.STUDY)[keyword]
    assert as_json(attribute, value) == {"vr": attribute.vr, "Value": [expected]}
