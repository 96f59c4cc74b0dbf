"""Manual link, unlink and unmerge: every change is an event that can be explained and undone,
and unmerge restores exactly the grouping before the link (a property test)."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity import services
from identity.models import LinkEvent, PairDecision, PatientRecord, Person

_serial = itertools.count()


def make_records(org, n: int) -> list[PatientRecord]:
    batch = next(_serial)
    records = []
    for i in range(n):
        person = Person.objects.create()
        records.append(
            PatientRecord.objects.create(
                organization=org,
                patient_id=f"B{batch}-{i}",
                name=f"CHILD{batch}^NUMBER{i}",
                person=person,
                match_pending=False,
            )
        )
    return records


@pytest.fixture
def steward(db):
    return get_user_model().objects.create_user("steward")


def groups(records) -> dict[int, int]:
    return dict(
        PatientRecord.objects.filter(pk__in=[r.pk for r in records]).values_list("pk", "person_id")
    )


def test_link_unlink_unmerge(riverside, lakeview, steward):
    a, b = make_records(riverside, 1)[0], make_records(lakeview, 1)[0]
    before = groups([a, b])
    event = services.link_records(a, b, steward, "same child, phone call with mother")
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.person_id == b.person_id
    assert event.kind == LinkEvent.Kind.LINK and event.records == [b.pk]
    pair = PairDecision.objects.get()
    assert pair.status == PairDecision.Status.LINKED and pair.decided_by == steward
    with pytest.raises(services.IdentityError, match="already belong"):
        services.link_records(a, b, steward)
    services.unmerge(event, steward)
    assert groups([a, b]) == before
    pair.refresh_from_db()
    assert pair.status == PairDecision.Status.KEPT_APART  # the matcher will not re-link it
    with pytest.raises(services.IdentityError, match="already undone"):
        services.unmerge(event, steward)


def test_unlink_takes_one_record_out_and_keeps_it_apart(riverside, lakeview, steward):
    a, b, c = make_records(riverside, 2) + make_records(lakeview, 1)
    services.link_records(a, b, steward)
    services.link_records(a, c, steward)
    event = services.unlink_record(c, steward, "wrong child")
    c.refresh_from_db()
    a.refresh_from_db()
    assert c.person_id != a.person_id and event.target_id == c.person_id
    kept = PairDecision.objects.filter(status=PairDecision.Status.KEPT_APART)
    assert {(d.record_a_id, d.record_b_id) for d in kept} == {
        tuple(sorted((c.pk, a.pk))),
        tuple(sorted((c.pk, b.pk))),
    }
    with pytest.raises(services.IdentityError, match="only one"):
        services.unlink_record(c, steward)


def test_unmerge_refuses_when_records_moved_since(riverside, steward):
    a, b, c = make_records(riverside, 3)
    first = services.link_records(a, b, steward)
    services.unlink_record(b, steward)
    with pytest.raises(services.IdentityError, match="moved again"):
        services.unmerge(first, steward)
    del c


def test_keep_apart_needs_separate_persons(riverside, steward):
    a, b = make_records(riverside, 2)
    services.keep_apart(a, b, steward)
    assert PairDecision.objects.get().status == PairDecision.Status.KEPT_APART
    services.link_records(a, b, steward)  # a steward may still change their mind
    with pytest.raises(services.IdentityError, match="unlink or unmerge"):
        services.keep_apart(a, b, steward)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    n=st.integers(min_value=2, max_value=6),
    links=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=8),
)
def test_unmerge_restores_the_previous_grouping_exactly(riverside, steward, n, links):
    """Apply links one after another; undoing them newest first walks back through exactly
    the groupings seen before each one."""
    records = make_records(riverside, n)
    history = []
    events = []
    for i, j in links:
        a, b = records[i % n], records[j % n]
        a.refresh_from_db()
        b.refresh_from_db()
        if a.pk == b.pk or a.person_id == b.person_id:
            continue
        history.append(groups(records))
        events.append(services.link_records(a, b, steward))
    for event, before in zip(reversed(events), reversed(history), strict=True):
        services.unmerge(event, steward)
        assert groups(records) == before
