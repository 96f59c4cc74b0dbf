"""QIDO-RS cross-check with Orthanc: the same files stored in ReadingRoom and in Orthanc give
the same study, series and instance result sets and the same key attributes.

Both servers are driven by the same real client (dicomweb-client): ReadingRoom through
pytest-django's live server with a technologist's bearer token, Orthanc 1.10 with its DICOMweb
plugin on loopback (tests/interop/conftest.py). The data are real pydicom test files
re-identified into five studies of three patients; each instance gets a fresh SOP Instance UID
(several pydicom files share UIDs, and Orthanc silently ignores a re-upload). The very same
Dataset objects are sent to both servers with `store_instances` (STOW-RS).

Every query is checked three ways: the set of objects each server returns must equal the set
the query should find in the files, and for each object the key attributes each server returns
must equal the values in the files, so a disagreement names the server that is wrong. The
queries are subtests of one test (CASES): the live server's database is emptied after every
test, ~1.5 s on PostgreSQL, so the corpus is stored once per test rather than once per query.

Where Orthanc and the standard differ, the difference is written down at the check it affects
(search for "Orthanc:"), Orthanc's known answer is pinned so the note goes stale loudly, and
only that attribute or that query is treated apart:

- Orthanc does not percent-decode query values, while dicomweb-client percent-encodes them:
  `*` and `?` are sent to Orthanc literally (conftest.LiteralQuerySession); a value with a
  space cannot be asked of Orthanc at all; PatientName (`^`) is not queried.
- Orthanc matches PatientID case-insensitively; PS3.4 C.2.2.2.1 wants case-sensitive matching
  for everything but PN.
- Orthanc ignores `includefield=all`.
- Orthanc leaves NumberOfFrames out when the file has none: compared only where the file has it.
- Orthanc returns the study attributes in a search for the series or instances of one study
  too; PS3.18 asks for them only when the search spans all studies. Nested searches compare
  only the attributes of the levels below the path. Conversely, with StudyInstanceUID (or
  SeriesInstanceUID) as a query key of a search over all series (instances), Orthanc leaves
  out the attributes of that level, which PS3.18 does ask for (Case.orthanc_omits).
- PS3.18 defines no order of results and the two differ (Orthanc: its index; ReadingRoom:
  newest study first), so limit/offset pages are compared as a partition of the whole result.
- RetrieveURL: dicomweb-client sends `Host:` without the port, so both servers build their
  RetrieveURL without it; only the part after the service root is compared.

test_wildcard_matching_is_case_sensitive guards a bug this comparison found: SQLite's LIKE
ignores case, so wildcard matching there now uses GLOB.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from pydicom import dcmread
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.factories import pydicom_file

pytestmark = pytest.mark.interop

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"

PATIENTS = {
    "A": {
        "PatientID": "IOP-1001",
        "PatientName": "INTEROP^ALICE",
        "PatientBirthDate": "20150304",
        "PatientSex": "F",
    },
    "B": {
        "PatientID": "IOP-1002",
        "PatientName": "INTEROP^BEN",
        "PatientBirthDate": "20180911",
        "PatientSex": "M",
    },
    "C": {
        "PatientID": "XQ-7731",
        "PatientName": "TESTCASE^CARA",
        "PatientBirthDate": "20200102",
        "PatientSex": "F",
    },
}


@dataclass(frozen=True)
class StudySpec:
    patient: str
    date: str
    time: str
    accession: str
    referring: str
    # (modality, pydicom file, series number, number of instances, body part)
    series: tuple[tuple[str, str, int, int, str], ...]


STUDIES = {
    "S1": StudySpec(
        "A",
        "20240105",
        "081500",
        "IOPACC01",
        "OKAFOR^ADA",
        (("CT", "CT_small.dcm", 1, 3, "HEAD"), ("MR", "MR_small.dcm", 2, 2, "HEAD")),
    ),
    "S2": StudySpec(
        "A",
        "20240312",
        "143000",
        "IOPACC02",
        "OKAFOR^ADA",
        (("MR", "MR_small_RLE.dcm", 1, 2, "BRAIN"), ("MR", "emri_small.dcm", 2, 1, "BRAIN")),
    ),
    "S3": StudySpec(
        "B",
        "20240312",
        "090500",
        "IOPACC03",
        "CHEN^WEI",
        (("US", "US1_UNCR.dcm", 1, 1, "ABDOMEN"), ("OT", "SC_rgb_jpeg_dcmtk.dcm", 3, 2, "")),
    ),
    "S4": StudySpec("B", "20231130", "235900", "IOPACC04", "", (("NM", "JPEG2000.dcm", 1, 2, ""),)),
    "S5": StudySpec(
        "C",
        "20240601",
        "120000",
        "XQ-ACC-5",
        "CHEN^WEI",
        (("CT", "CT_small.dcm", 5, 2, "CHEST"), ("MR", "MR_small.dcm", 6, 1, "CHEST")),
    ),
}


# --- the corpus ------------------------------------------------------------------------------


@dataclass
class Corpus:
    """The datasets and the truth about them: symbolic names (S1, S1.2, S1.2.1) <-> UIDs."""

    datasets: list[Dataset] = field(default_factory=list)
    uid: dict[str, str] = field(default_factory=dict)
    name: dict[str, str] = field(default_factory=dict)
    instances_of: dict[str, list[Dataset]] = field(default_factory=lambda: defaultdict(list))

    def names(self, level: str) -> list[str]:
        depth = {"studies": 0, "series": 1, "instances": 2}[level]
        return [n for n in self.uid if n.count(".") == depth]

    def expand(self, level: str, patterns: str) -> set[str]:
        found = set()
        for pattern in patterns.split():
            matches = fnmatch.filter(self.names(level), pattern)
            assert matches, f"pattern {pattern!r} names no {level} of the corpus"
            found.update(matches)
        return found

    def resolve(self, text: str) -> str:
        return re.sub(r"\{([\w.]+)\}", lambda m: self.uid[m.group(1)], text)


def build_corpus() -> Corpus:
    corpus = Corpus()
    for study_name, spec in STUDIES.items():
        study_uid = generate_uid()
        corpus.uid[study_name] = study_uid
        for modality, source, series_number, count, body_part in spec.series:
            series_name = f"{study_name}.{series_number}"
            series_uid = generate_uid()
            corpus.uid[series_name] = series_uid
            for number in range(1, count + 1):
                ds = dcmread(pydicom_file(source))
                for keyword, value in PATIENTS[spec.patient].items():
                    setattr(ds, keyword, value)
                ds.StudyInstanceUID = study_uid
                ds.SeriesInstanceUID = series_uid
                ds.SOPInstanceUID = generate_uid()
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
                ds.StudyDate = spec.date
                ds.StudyTime = spec.time
                ds.AccessionNumber = spec.accession
                ds.ReferringPhysicianName = spec.referring
                ds.StudyID = study_name
                ds.StudyDescription = f"INTEROP {study_name}"
                ds.InstitutionName = f"RIVERSIDE {spec.patient}"
                ds.Modality = modality
                ds.SeriesNumber = series_number
                ds.SeriesDescription = f"{modality} SERIES {series_number}"
                ds.BodyPartExamined = body_part
                ds.InstanceNumber = number
                instance_name = f"{series_name}.{number}"
                corpus.uid[instance_name] = ds.SOPInstanceUID
                corpus.datasets.append(ds)
                for level_name in (study_name, series_name, instance_name):
                    corpus.instances_of[level_name].append(ds)
    corpus.name = {uid: name for name, uid in corpus.uid.items()}
    assert len(set(corpus.name)) == len(corpus.uid)
    return corpus


# The truth, from the files: what each attribute of a study, series or instance should be.


INTEGERS = {"SeriesNumber", "InstanceNumber", "NumberOfFrames", "Rows", "Columns", "BitsAllocated"}


def _pn(value) -> str | None:
    return str(value) or None


def _file_value(ds: Dataset, keyword: str):
    if keyword not in ds or ds[keyword].value in (None, ""):
        return None
    value = ds[keyword].value
    if keyword in ("PatientName", "ReferringPhysicianName"):
        return _pn(value)
    if keyword in INTEGERS:
        return int(value)
    return str(value)


def truth(corpus: Corpus, level: str, name: str, keyword: str):
    instances = corpus.instances_of[name]
    first = instances[0]
    study = name.split(".")[0]
    if keyword == "ModalitiesInStudy":
        return frozenset(ds.Modality for ds in corpus.instances_of[study])
    if keyword == "NumberOfStudyRelatedSeries":
        return len({ds.SeriesInstanceUID for ds in corpus.instances_of[study]})
    if keyword == "NumberOfStudyRelatedInstances":
        return len(corpus.instances_of[study])
    if keyword == "NumberOfSeriesRelatedInstances":
        return len(corpus.instances_of[".".join(name.split(".")[:2])])
    if keyword == "RetrieveURL":
        path = f"/studies/{first.StudyInstanceUID}"
        if level in ("series", "instances"):
            path += f"/series/{first.SeriesInstanceUID}"
        if level == "instances":
            path += f"/instances/{first.SOPInstanceUID}"
        return path
    return _file_value(first, keyword)


# --- reading results -------------------------------------------------------------------------

MISSING = "<not returned>"
KEY_OF_LEVEL = {"studies": "0020000D", "series": "0020000E", "instances": "00080018"}


def returned(item: dict, keyword: str):
    """One attribute of a QIDO result in comparable form; MISSING when it is not there."""
    tag = f"{tag_for_keyword(keyword):08X}"
    if tag not in item:
        return MISSING
    values = item[tag].get("Value") or []
    if not values:
        return None
    if keyword == "ModalitiesInStudy":
        return frozenset(values)
    if keyword == "RetrieveURL":
        # Orthanc: http://127.0.0.1/dicom-web/studies/...; ReadingRoom: .../dicomweb/studies/...
        return re.sub(r"^.*?/dicom-?web(?=/studies/)", "", values[0])
    value = values[0] if len(values) == 1 else tuple(values)
    if isinstance(value, dict):  # PN
        return value.get("Alphabetic") or None
    return value


def by_name(corpus: Corpus, level: str, results: list[dict]) -> dict[str, dict]:
    found = {}
    for item in results:
        uid = item[KEY_OF_LEVEL[level]]["Value"][0]
        name = corpus.name.get(uid, f"unknown {uid}")
        assert name not in found, f"{name} returned twice"
        found[name] = item
    return found


# --- what is compared --------------------------------------------------------------------------

STUDY_ATTRIBUTES = (
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
# Study attributes that a search across all studies returns with each series or instance.
STUDY_ATTRIBUTES_BELOW = (
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
)
SERIES_ATTRIBUTES = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "SeriesNumber",
    "SeriesDescription",
    "NumberOfSeriesRelatedInstances",
)
SERIES_ATTRIBUTES_BELOW = ("SeriesInstanceUID", "Modality", "SeriesNumber")
INSTANCE_ATTRIBUTES = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",  # where the file has it (see compare)
)


def attributes_to_compare(level: str, study: str | None, series: str | None) -> list[str]:
    """PS3.18 10.6.3.3: a search returns its own level's attributes, and those of the levels
    above only when the path does not fix them. Orthanc returns them anyway; only what both
    must return is compared."""
    if level == "studies":
        keywords = list(STUDY_ATTRIBUTES)
    elif level == "series":
        keywords = list(SERIES_ATTRIBUTES)
        if study is None:
            keywords += STUDY_ATTRIBUTES_BELOW
    else:
        keywords = list(INSTANCE_ATTRIBUTES)
        if series is None:
            keywords += SERIES_ATTRIBUTES_BELOW
        if study is None:
            keywords += STUDY_ATTRIBUTES_BELOW
    return [*keywords, "RetrieveURL"]


def compare(
    corpus: Corpus,
    level: str,
    expected: set[str],
    answers: dict[str, list[dict]],
    keywords: list[str],
    keywords_for: dict[str, list[str]] | None = None,
) -> None:
    """Each server's result set against `expected`, then every attribute against the files
    (`keywords`, or `keywords_for[server]` for a server with a documented exception)."""
    keywords_for = keywords_for or {}
    problems = []
    found = {server: by_name(corpus, level, results) for server, results in answers.items()}
    for server, items in found.items():
        if set(items) != expected:
            problems.append(
                f"{server} returned {sorted(items)}; the files say {sorted(expected)} "
                f"(missing {sorted(expected - set(items))}, extra {sorted(set(items) - expected)})"
            )
    for name in sorted(expected):
        for keyword in keywords:
            want = truth(corpus, level, name, keyword)
            if keyword == "NumberOfFrames" and want is None:
                # Orthanc: no NumberOfFrames in the answer when the file has none (a single
                # frame image); ReadingRoom says 1. Compared only where the file has it.
                continue
            for server, items in found.items():
                if name not in items or keyword not in keywords_for.get(server, keywords):
                    continue
                got = returned(items[name], keyword)
                if got != want:
                    problems.append(f"{server} {name} {keyword}: {got!r}, the file has {want!r}")
    assert not problems, "\n".join(problems)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus()


def assert_all_stored(corpus: Corpus, response: Dataset, server: str) -> None:
    failed = response.get("FailedSOPSequence") or []
    assert not failed, f"{server} refused {[(i.ReferencedSOPInstanceUID, i) for i in failed]}"
    stored = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
    assert stored == {ds.SOPInstanceUID for ds in corpus.datasets}, server


@pytest.fixture(scope="module")
def orthanc_loaded(orthanc_client, corpus):
    """The corpus in Orthanc, once for the module (the UIDs are new every session)."""
    assert_all_stored(corpus, orthanc_client.store_instances(corpus.datasets), "Orthanc")
    return orthanc_client


@pytest.fixture
def readingroom(live_server, riverside, settings, corpus):
    """The same datasets stored in ReadingRoom by a Riverside technologist (each test: the
    live server's database is emptied after every test)."""
    from dicomweb_client.api import DICOMwebClient

    from tests.dicomweb.conftest import api_user

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    tech = api_user("interop-tech", riverside)
    client = DICOMwebClient(
        f"{live_server.url}/dicomweb",
        headers={"Authorization": f"Bearer {tech.token}"},
        # dicomweb-client sends a STOW body over chunk_size (1 MB) with chunked transfer
        # encoding. Django's test server (wsgiref) does not de-chunk request bodies: the view
        # would read an empty body and answer 400. Daphne, which serves ReadingRoom, does (the
        # same chunked STOW of this corpus stores all 16 instances there), so the test sends
        # the body in one piece with a Content-Length instead.
        chunk_size=64 << 20,
    )
    assert_all_stored(corpus, client.store_instances(corpus.datasets), "ReadingRoom")
    return client


@pytest.fixture
def servers(readingroom, orthanc_loaded):
    return {"ReadingRoom": readingroom, "Orthanc": orthanc_loaded}


def search(client, corpus: Corpus, level: str, study=None, series=None, **kwargs) -> list[dict]:
    if study is not None:
        kwargs["study_instance_uid"] = corpus.uid[study]
    if series is not None:
        kwargs["series_instance_uid"] = corpus.uid[series]
    if "search_filters" in kwargs:
        kwargs["search_filters"] = {
            k: corpus.resolve(v) for k, v in kwargs["search_filters"].items()
        }
    return getattr(client, f"search_for_{level}")(**kwargs)


# --- the queries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    level: str  # studies | series | instances
    expect: str  # fnmatch patterns over the corpus names ("" for no match)
    filters: dict = field(default_factory=dict)  # values may name UIDs as {S1}, {S1.2}
    study: str | None = None  # nested resource: /studies/{S}/series, /studies/{S}/instances
    series: str | None = None  # /studies/{S}/series/{SE}/instances
    fields: tuple[str, ...] = ()  # includefield, by keyword or tag
    # Attributes Orthanc is known to leave out of this answer (the reason is at the case).
    orthanc_omits: tuple[str, ...] = ()


# Orthanc: with a UID of the level above as a query key of a search over all series (or all
# instances) it leaves that level's attributes out, as if the path named the study (series).
# The target resource is still all series (instances), for which PS3.18 10.6.3.3 asks for them;
# ReadingRoom returns them.
ABOVE_SERIES = STUDY_ATTRIBUTES_BELOW
ABOVE_INSTANCES = SERIES_ATTRIBUTES_BELOW[1:]  # not SeriesInstanceUID itself

CASES = {
    # Studies
    "studies-all": Case("studies", "S*"),
    "studies-patientid-exact": Case("studies", "S1 S2", {"PatientID": "IOP-1001"}),
    "studies-patientid-star": Case("studies", "S1 S2 S3 S4", {"PatientID": "IOP-*"}),
    "studies-patientid-question": Case("studies", "S5", {"PatientID": "?Q-77*"}),
    "studies-patientid-no-match": Case("studies", "", {"PatientID": "IOP-9999"}),
    "studies-date-exact": Case("studies", "S2 S3", {"StudyDate": "20240312"}),
    "studies-date-range": Case("studies", "S1 S2 S3", {"StudyDate": "20240101-20240331"}),
    "studies-date-range-inclusive": Case("studies", "S1 S2 S3", {"StudyDate": "20240105-20240312"}),
    "studies-date-until": Case("studies", "S1 S4", {"StudyDate": "-20240105"}),
    "studies-date-from": Case("studies", "S2 S3 S5", {"StudyDate": "20240312-"}),
    "studies-time-exact": Case("studies", "S4", {"StudyTime": "235900"}),
    "studies-date-and-time-range": Case(
        "studies", "S2", {"StudyDate": "20240312", "StudyTime": "140000-150000"}
    ),
    "studies-accession-exact": Case("studies", "S3", {"AccessionNumber": "IOPACC03"}),
    "studies-accession-wildcard": Case("studies", "S5", {"AccessionNumber": "XQ-*"}),
    "studies-accession-universal": Case("studies", "S*", {"AccessionNumber": ""}),
    "studies-uid-single": Case("studies", "S4", {"StudyInstanceUID": "{S4}"}),
    "studies-uid-list": Case("studies", "S1 S3 S5", {"StudyInstanceUID": "{S1},{S3},{S5}"}),
    "studies-modality": Case("studies", "S1 S2 S5", {"ModalitiesInStudy": "MR"}),
    "studies-modality-list": Case("studies", "S1 S4 S5", {"ModalitiesInStudy": "CT,NM"}),
    "studies-modality-and-patient": Case(
        "studies", "S3", {"ModalitiesInStudy": "US", "PatientID": "IOP-1002"}
    ),
    "studies-patient-and-date": Case(
        "studies", "S2", {"PatientID": "IOP-1001", "StudyDate": "20240312"}
    ),
    "studies-birth-date-range": Case(
        "studies", "S1 S2 S3 S4", {"PatientBirthDate": "20150101-20181231"}
    ),
    "studies-sex": Case("studies", "S3 S4", {"PatientSex": "M"}),
    "studies-includefield": Case(
        "studies",
        "S3 S4",
        {"PatientID": "IOP-1002"},
        fields=("StudyDescription", "00080080"),  # by keyword, and InstitutionName by tag
    ),
    # Series
    "series-all": Case("series", "S*"),
    "series-modality": Case("series", "S1.2 S2.1 S2.2 S5.6", {"Modality": "MR"}),
    "series-modality-and-patient": Case(
        "series", "S5.5", {"Modality": "CT", "PatientID": "XQ-7731"}
    ),
    "series-by-study-date": Case("series", "S2.* S3.*", {"StudyDate": "20240312"}),
    "series-number": Case("series", "S1.2 S2.2", {"SeriesNumber": "2"}),
    "series-description-wildcard": Case(
        "series", "S1.2 S2.1 S2.2 S5.6", {"SeriesDescription": "MR*"}
    ),
    "series-body-part": Case(
        "series", "S1.*", {"BodyPartExamined": "HEAD"}, fields=("BodyPartExamined",)
    ),
    "series-uid": Case("series", "S3.3", {"SeriesInstanceUID": "{S3.3}"}),
    "series-by-study-uid": Case(
        "series",
        "S1.2",
        {"StudyInstanceUID": "{S1}", "Modality": "MR"},
        orthanc_omits=ABOVE_SERIES,
    ),
    "series-by-study-uid-list": Case(
        "series", "S1.* S4.*", {"StudyInstanceUID": "{S1},{S4}"}, orthanc_omits=ABOVE_SERIES
    ),
    "study-series": Case("series", "S1.*", study="S1"),
    "study-series-modality": Case("series", "S3.3", {"Modality": "OT"}, study="S3"),
    "study-series-no-match": Case("series", "", {"Modality": "CT"}, study="S3"),
    "study-series-includefield": Case("series", "S2.*", study="S2", fields=("BodyPartExamined",)),
    # Instances
    "instances-all": Case("instances", "S*"),
    "instances-sop-class": Case("instances", "S1.1.* S5.5.*", {"SOPClassUID": CT_IMAGE}),
    "instances-sop-class-list": Case(
        "instances", "S1.1.* S3.1.* S5.5.*", {"SOPClassUID": f"{CT_IMAGE},{US_IMAGE}"}
    ),
    "instances-sop-class-multiframe": Case(
        "instances", "S2.2.*", {"SOPClassUID": ENHANCED_MR_IMAGE}
    ),
    "instances-sop-class-and-patient": Case(
        "instances", "S3.3.* S4.*", {"SOPClassUID": SECONDARY_CAPTURE, "PatientID": "IOP-1002"}
    ),
    "instances-modality-and-date": Case(
        "instances", "S1.2.*", {"Modality": "MR", "StudyDate": "20240105"}
    ),
    "instances-date-and-time-range": Case(
        "instances", "S3.*", {"StudyDate": "20240312", "StudyTime": "0900-1000"}
    ),
    "instances-sop-uid": Case("instances", "S4.1.2", {"SOPInstanceUID": "{S4.1.2}"}),
    "instances-series-uid-list": Case(
        "instances",
        "S1.1.* S5.5.*",
        {"SeriesInstanceUID": "{S1.1},{S5.5}"},
        orthanc_omits=ABOVE_INSTANCES,
    ),
    "instances-number": Case("instances", "S1.1.3", {"InstanceNumber": "3"}),
    "instances-rows": Case("instances", "S1.1.* S5.5.*", {"Rows": "128"}),
    "instances-frames": Case("instances", "S2.2.1", {"NumberOfFrames": "10"}),
    "study-instances": Case("instances", "S3.*", study="S3"),
    "study-instances-sop-class": Case(
        "instances", "S3.3.*", {"SOPClassUID": SECONDARY_CAPTURE}, study="S3"
    ),
    "series-instances": Case("instances", "S1.1.*", study="S1", series="S1.1"),
    "series-instances-multiframe": Case(
        "instances",
        "S2.2.1",
        study="S2",
        series="S2.2",
        fields=("StudyDescription", "0008103E"),  # SeriesDescription by tag
    ),
    "series-instances-number": Case(
        "instances", "S5.5.2", {"InstanceNumber": "2"}, study="S5", series="S5.5"
    ),
    "series-instances-jpeg2000": Case("instances", "S4.1.*", study="S4", series="S4.1"),
}


def run_case(servers, corpus: Corpus, case: Case) -> None:
    answers = {
        server: search(
            client,
            corpus,
            case.level,
            study=case.study,
            series=case.series,
            search_filters=dict(case.filters),
            fields=list(case.fields) or None,
        )
        for server, client in servers.items()
    }
    keywords = attributes_to_compare(case.level, case.study, case.series)
    keywords += [keyword_for_tag(int(f, 16)) if TAG.fullmatch(f) else f for f in case.fields]
    expected = corpus.expand(case.level, case.expect) if case.expect else set()
    keywords_for = {}
    if case.orthanc_omits:
        present = [
            (name, keyword)
            for name, item in by_name(corpus, case.level, answers["Orthanc"]).items()
            for keyword in case.orthanc_omits
            if returned(item, keyword) != MISSING
        ]
        assert not present, f"Orthanc now returns {present}: update this case's note"
        keywords_for["Orthanc"] = [k for k in keywords if k not in case.orthanc_omits]
    compare(corpus, case.level, expected, answers, keywords, keywords_for)


TAG = re.compile(r"[0-9A-Fa-f]{8}")


def test_same_results_and_attributes_as_orthanc(servers, corpus, subtests):
    """Every query of CASES, each its own subtest. One test for all of them because the live
    server's database is emptied after each test (on PostgreSQL that alone takes ~1.5 s), so
    the corpus is stored in ReadingRoom once per test, not once per query."""
    for name, case in CASES.items():
        with subtests.test(name):
            run_case(servers, corpus, case)


# --- paging --------------------------------------------------------------------------------------

PAGING = {
    "studies": ("studies", None, 2),
    "series": ("series", None, 4),
    "instances": ("instances", None, 4),  # 16 instances: the fifth page is empty
    "study-instances": ("instances", "S1", 2),
}


def test_limit_and_offset_partition_the_results(servers, corpus, subtests):
    """Pages of `limit` from offset 0, limit, 2*limit... are disjoint, full but for the last,
    and together are exactly the whole result set, on both servers.

    Orthanc: it orders results differently from ReadingRoom (PS3.18 defines no order), so the
    pages themselves cannot be compared, only the partition they make."""
    for label, (level, study, limit) in PAGING.items():
        expected = corpus.expand(level, f"{study}.*" if study else "S*")
        for server, client in servers.items():
            with subtests.test(f"{label} {server}"):
                seen: list[str] = []
                offset = 0
                while True:
                    page = search(client, corpus, level, study=study, limit=limit, offset=offset)
                    names = list(by_name(corpus, level, page))
                    assert len(names) <= limit, (offset, names)
                    seen += names
                    if len(names) < limit:
                        assert offset + len(names) == len(expected), (offset, names)
                        break
                    offset += limit
                assert len(seen) == len(set(seen)), f"a result on two pages: {seen}"
                assert set(seen) == expected


# --- documented differences ------------------------------------------------------------------


def studies_found(client, corpus: Corpus, **kwargs) -> set[str]:
    return set(by_name(corpus, "studies", search(client, corpus, "studies", **kwargs)))


def test_documented_differences(servers, corpus, subtests):
    """Where Orthanc departs from the standard, ReadingRoom's standard answer is checked and
    Orthanc's known answer is pinned, so that the note goes stale loudly if Orthanc changes."""
    rr, orthanc = servers["ReadingRoom"], servers["Orthanc"]

    with subtests.test("PatientID matching is case-sensitive"):
        # PS3.4 C.2.2.2.1: single value matching is case-sensitive except for PN attributes.
        # Orthanc: PatientID is an "identifier tag" it normalises to upper case in its index,
        # so it matches it case-insensitively, with or without wildcards.
        assert studies_found(rr, corpus, search_filters={"PatientID": "iop-1001"}) == set()
        assert studies_found(orthanc, corpus, search_filters={"PatientID": "iop-1001"}) == {
            "S1",
            "S2",
        }
        assert studies_found(orthanc, corpus, search_filters={"PatientID": "iop-*"}) == {
            "S1",
            "S2",
            "S3",
            "S4",
        }

    with subtests.test("includefield=all"):
        # includefield=all asks for every attribute the server has. ReadingRoom returns all its
        # index attributes. Orthanc: `all` is ignored and only the defaults come back (an
        # explicit includefield works: see the studies-includefield case).
        answers = {
            server: by_name(
                corpus,
                "studies",
                search(
                    client,
                    corpus,
                    "studies",
                    search_filters={"StudyInstanceUID": "{S3}"},
                    fields=["all"],
                ),
            )
            for server, client in servers.items()
        }
        assert {server: set(found) for server, found in answers.items()} == {
            "ReadingRoom": {"S3"},
            "Orthanc": {"S3"},
        }
        for keyword in ("StudyDescription", "InstitutionName"):
            want = truth(corpus, "studies", "S3", keyword)
            assert returned(answers["ReadingRoom"]["S3"], keyword) == want
            assert returned(answers["Orthanc"]["S3"], keyword) == MISSING, "Orthanc changed"
        compare(
            corpus,
            "studies",
            {"S3"},
            {server: list(found.values()) for server, found in answers.items()},
            attributes_to_compare("studies", None, None),
        )

    with subtests.test("a query value with a space"):
        # dicomweb-client encodes a space as `+`. Orthanc does not decode query values (see
        # conftest.LiteralQuerySession), and a literal space cannot be sent in a URL, so
        # Orthanc 1.10 cannot be asked for a value with a space at all.
        query = {"search_filters": {"StudyDescription": "INTEROP S3"}}
        assert studies_found(rr, corpus, **query) == {"S3"}
        assert studies_found(orthanc, corpus, **query) == set(), "Orthanc changed"


# --- ReadingRoom bugs found by the cross-check ---------------------------------------------------


def test_wildcard_matching_is_case_sensitive(readingroom, corpus):
    """Exact `iop-1001` finds nothing (IOP-1001 is stored), and so must `iop-*`. Orthanc is
    case-insensitive in both (test_documented_differences), so the expectation comes from the
    standard, not from Orthanc."""
    queries = [
        ("studies", {"PatientID": "iop-*"}),
        ("studies", {"PatientID": "iop-100?"}),
        ("studies", {"AccessionNumber": "iopacc0*"}),
        ("series", {"SeriesDescription": "mr*"}),
        ("instances", {"Modality": "c?"}),
    ]
    found = {
        f"{level} {filters}": sorted(
            by_name(corpus, level, search(readingroom, corpus, level, search_filters=filters))
        )
        for level, filters in queries
    }
    assert found == dict.fromkeys(found, []), found
