"""QIDO-RS searches: a parsed Query run over the studies the access policy lets a user see.

One SQL query per search whatever the page size. The page (ordered, limited) is chosen in a
subquery; the outer query reads its rows with `.values()`, joined up to the study and its
patient record, and counts the related series and instances in correlated subqueries. Counting
outside the page's subquery means only the page's rows are counted: SQLite evaluates result
columns before it sorts, so counting in the paging query itself would count every match.

The JSON is built from those plain rows through a plan made once per search (which column
feeds which tag, in tag order, with the VR's encoder): at 100 rows, building model instances
and looking tags and VRs up per attribute had been most of a search's time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery

from archive.models import Instance, Series, Study
from identity.models import enterprise_id_for

from .attributes import PATH_PREFIX, Level, json_encoder
from .query import Query

TAG_RETRIEVE_URL = "00081190"
TAG_AVAILABILITY = "00080056"
TAG_STUDY_SERIES = "00201206"
TAG_STUDY_INSTANCES = "00201208"
TAG_SERIES_INSTANCES = "00201209"
TAG_OTHER_PATIENT_IDS = "00101002"
ENTERPRISE_ISSUER = "READINGROOM"
ONLINE = {"vr": "CS", "Value": ["ONLINE"]}

STUDY_ORDER = ("-study_date", "-study_time", "-id")
# The same order read off the StudyModality entry a one-code ModalitiesInStudy search joins
# (the study's own date and time, copied), so the database walks that code's index entries
# newest first and stops at the page instead of testing every study's codes.
STUDY_MODALITY_ORDER = (
    "-modality_entries__study_date",
    "-modality_entries__study_time",
    "-modality_entries__study_id",
)
SERIES_ORDER = ("study_id", "series_number", "id")
INSTANCE_ORDER = ("series__study_id", "series_id", "instance_number", "id")

# Annotation names of the counts (not field names of any model).
N_SERIES = "qido_n_series"
N_INSTANCES = "qido_n_instances"

Row = dict[str, object]
Producer = Callable[[Row], "dict | None"]


def study_url(base: str, study_uid: str) -> str:
    return f"{base}/studies/{study_uid}"


def series_url(base: str, study_uid: str, series_uid: str) -> str:
    return f"{study_url(base, study_uid)}/series/{series_uid}"


def instance_url(base: str, instance: Instance) -> str:
    """The WADO-RS address of an instance (a model row with its series and study loaded)."""
    series = instance.series
    return (
        f"{series_url(base, series.study.study_instance_uid, series.series_instance_uid)}"
        f"/instances/{instance.sop_instance_uid}"
    )


def search_studies(visible: QuerySet, query: Query, base: str) -> list[dict]:
    order = STUDY_MODALITY_ORDER if query.modality is not None else STUDY_ORDER
    page = _page(query.apply(visible), order, query)
    rows = Study.objects.filter(pk__in=page).order_by(*STUDY_ORDER)
    rows = rows.annotate(**{N_SERIES: _series_count("pk"), N_INSTANCES: _instance_count("pk")})
    uid, person = "study_instance_uid", "patient_record__person_id"
    extras: dict[str, Producer] = {
        TAG_STUDY_SERIES: _number(N_SERIES),
        TAG_STUDY_INSTANCES: _number(N_INSTANCES),
        TAG_RETRIEVE_URL: lambda row: _url(study_url(base, row[uid])),
        TAG_OTHER_PATIENT_IDS: lambda row: _enterprise_identity(row[person]),
    }
    plan = _Plan(query, Level.STUDY, extras, [uid, person, N_SERIES, N_INSTANCES])
    return plan.items(rows)


def _enterprise_identity(person_id: object) -> dict | None:
    """The child's enterprise identity beside the sending hospital's own PatientID, which stays
    as it was received: Other Patient IDs Sequence with ReadingRoom as the issuer."""
    if not person_id:
        return None
    item = {
        "00100020": {"vr": "LO", "Value": [enterprise_id_for(int(person_id))]},
        "00100021": {"vr": "LO", "Value": [ENTERPRISE_ISSUER]},
        "00100022": {"vr": "CS", "Value": ["TEXT"]},
    }
    return {"vr": "SQ", "Value": [item]}


def search_series(visible: QuerySet, query: Query, base: str, study_uid: str | None) -> list[dict]:
    matches = Series.objects.filter(study__in=visible)
    if study_uid is not None:
        matches = matches.filter(study__study_instance_uid=study_uid)
    page = _page(query.apply(matches), SERIES_ORDER, query)
    rows = Series.objects.filter(pk__in=page).order_by(*SERIES_ORDER)
    rows = rows.annotate(**{N_INSTANCES: _instance_count("pk", via_series=False)})
    study, series = "study__study_instance_uid", "series_instance_uid"
    extras: dict[str, Producer] = {
        TAG_SERIES_INSTANCES: _number(N_INSTANCES),
        TAG_RETRIEVE_URL: lambda row: _url(series_url(base, row[study], row[series])),
    }
    return _Plan(query, Level.SERIES, extras, [study, series, N_INSTANCES]).items(rows)


def search_instances(
    visible: QuerySet,
    query: Query,
    base: str,
    study_uid: str | None,
    series_uid: str | None,
) -> list[dict]:
    matches = Instance.objects.filter(series__study__in=visible)
    if study_uid is not None:
        matches = matches.filter(series__study__study_instance_uid=study_uid)
    if series_uid is not None:
        matches = matches.filter(series__series_instance_uid=series_uid)
    rows = query.apply(matches).order_by(*INSTANCE_ORDER)[query.offset : query.offset + query.limit]
    study, series, sop = (
        "series__study__study_instance_uid",
        "series__series_instance_uid",
        "sop_instance_uid",
    )

    def url(row: Row) -> dict:
        return _url(f"{series_url(base, row[study], row[series])}/instances/{row[sop]}")

    return _Plan(query, Level.INSTANCE, {TAG_RETRIEVE_URL: url}, [study, series, sop]).items(rows)


class _Plan:
    """How one search turns a `.values()` row into a DICOM JSON object: the columns to read
    and, in tag order, what makes each tag's entry (a producer returning None leaves it out)."""

    def __init__(
        self, query: Query, level: Level, extras: dict[str, Producer], needs: Sequence[str]
    ) -> None:
        producers: dict[str, Producer] = {TAG_AVAILABILITY: lambda row: ONLINE}
        columns = dict.fromkeys(needs)
        for attribute in query.include:
            key = PATH_PREFIX[(level, attribute.level)] + attribute.column
            columns[key] = None
            producers[attribute.tag] = _entry(attribute, key)
        producers.update(extras)
        self.columns = list(columns)
        self.producers = sorted(producers.items())

    def items(self, rows: QuerySet) -> list[dict]:
        results = []
        for row in rows.values(*self.columns):
            item = {}
            for tag, produce in self.producers:
                entry = produce(row)
                if entry is not None:
                    item[tag] = entry
            results.append(item)
        return results


def _entry(attribute, key: str) -> Producer:
    encode = json_encoder(attribute)
    return lambda row: encode(row[key])


def _number(key: str) -> Producer:
    return lambda row: {"vr": "IS", "Value": [row[key] or 0]}


def _url(url: str) -> dict:
    return {"vr": "UR", "Value": [url]}


def _page(matches: QuerySet, order: Sequence[str], query: Query) -> QuerySet:
    """The ids of the requested page of `matches`, as a subquery."""
    return matches.order_by(*order).values("pk")[query.offset : query.offset + query.limit]


def _series_count(study: str) -> Subquery:
    series = Series.objects.filter(study=OuterRef(study)).order_by().values("study")
    return Subquery(series.annotate(n=Count("pk")).values("n"), output_field=IntegerField())


def _instance_count(outer: str, via_series: bool = True) -> Subquery:
    """Instances of the outer study (via_series) or of the outer series."""
    if via_series:
        instances = Instance.objects.filter(series__study=OuterRef(outer)).values("series__study")
    else:
        instances = Instance.objects.filter(series=OuterRef(outer)).values("series")
    counted = instances.order_by().annotate(n=Count("pk")).values("n")
    return Subquery(counted, output_field=IntegerField())
