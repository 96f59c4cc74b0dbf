"""Worklist pages and row fragments per role: what each persona sees, and what the outsider
(another group's reader, another facility's referrer) never sees."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from worklist import services
from worklist.models import Case

from .conftest import LAKEVIEW_REFERRING, make_study, verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def cases(world):
    riverside = services.open_case(
        make_study(world.riverside, name="<script>alert(1)</script>^MIA").pk
    )
    lakeview = services.open_case(
        make_study(world.lakeview, "MR", "MR BRAIN", referring=LAKEVIEW_REFERRING).pk
    )
    return riverside, lakeview


def test_reader_sees_group_unassigned_cases_escaped_with_age_and_time_left(world, cases, client):
    c = verified_client(client, world.reader)
    page = c.get("/worklist/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="case-{cases[0].pk}"' in html and f'id="case-{cases[1].pk}"' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "7 y" in html  # born 2019-03-14, study 2026-10-02
    assert 'class="time-left"' in html
    assert AuditEvent.objects.filter(action="worklist.view", username="reader").exists()


def test_reader_list_drops_cases_assigned_to_others(world, cases, client):
    services.assign_case(cases[0].pk, world.reader2, by=world.scheduler)
    c = verified_client(client, world.reader)
    assert c.get(f"/worklist/rows/{cases[0].pk}/").status_code == 404
    assert c.get(f"/worklist/rows/{cases[1].pk}/").status_code == 200
    mine = verified_client(client, world.reader2).get(f"/worklist/rows/{cases[0].pk}/")
    assert mine.status_code == 200 and b"reader2" in mine.content


def test_outsiders_get_no_row(world, cases, client):
    for user in (world.other_reader, world.referrer2):
        c = verified_client(client, user)
        assert c.get(f"/worklist/rows/{cases[0].pk}/").status_code == 404, user
        assert f'id="case-{cases[0].pk}"' not in c.get("/worklist/").content.decode()
    # Harbor reads for Lakeview, but this Lakeview case was routed to Northstar.
    c = verified_client(client, world.other_reader)
    assert c.get(f"/worklist/rows/{cases[1].pk}/").status_code == 404


def test_referrer_sees_their_patients_cases_with_status(world, cases, client):
    c = verified_client(client, world.referrer)
    html = c.get("/worklist/").content.decode()
    assert f'id="case-{cases[0].pk}"' in html and f'id="case-{cases[1].pk}"' not in html
    assert "New" in html and "Open to report" not in html
    c2 = verified_client(client, world.referrer2)
    assert c2.get(f"/worklist/rows/{cases[1].pk}/").status_code == 200


def test_scheduler_sees_all_with_load_and_greyed_ineligible_readers(world, cases, client):
    services.assign_case(cases[0].pk, world.reader2, by=world.scheduler)
    c = verified_client(client, world.scheduler)
    html = c.get("/worklist/").content.decode()
    assert f'id="case-{cases[0].pk}"' in html and f'id="case-{cases[1].pk}"' in html
    assert "Reader load" in html
    readers = c.get(f"/worklist/cases/{cases[1].pk}/readers/").content.decode()
    assert "no licence in PA" in readers and "disabled" in readers
    assigned = c.post(f"/worklist/cases/{cases[1].pk}/assign/", {"reader": world.reader.pk})
    assert assigned.status_code == 200
    refused = c.post(f"/worklist/cases/{cases[1].pk}/assign/", {"reader": world.reader2.pk})
    assert refused.status_code == 400 and "no licence in PA" in refused.json()["error"]
    bad = c.post(f"/worklist/cases/{cases[1].pk}/assign/", {"reader": "x"})
    assert bad.status_code == 400
    bulk = c.post("/worklist/bulk-assign/", {"case": [cases[0].pk], "reader": world.reader.pk})
    assert bulk.json()["results"] == {str(cases[0].pk): "ok"}
    # A reader is not a scheduler.
    r = verified_client(client, world.reader)
    assert r.post(f"/worklist/cases/{cases[1].pk}/assign/", {"reader": 1}).status_code == 404


def test_overdue_first_then_least_time_left(world, cases, client):
    Case.objects.filter(pk=cases[1].pk).update(due_at=timezone.now() - timedelta(minutes=5))
    html = verified_client(client, world.scheduler).get("/worklist/").content.decode()
    assert html.index(f'id="case-{cases[1].pk}"') < html.index(f'id="case-{cases[0].pk}"')
    overdue = verified_client(client, world.scheduler).get("/worklist/?due=overdue")
    assert f'id="case-{cases[0].pk}"' not in overdue.content.decode()


@pytest.mark.parametrize(
    "query",
    ["priority=asap", "status=done", "facility=x", "due=tomorrow", "modality=C;T", "view=admin"],
)
def test_bad_filters_are_4xx_with_a_message(world, cases, client, query):
    response = verified_client(client, world.scheduler).get(f"/worklist/?{query}")
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert response.content.decode().strip()


def test_filters_narrow_the_list(world, cases, client):
    c = verified_client(client, world.scheduler)
    html = c.get(f"/worklist/?modality=MR&facility={world.lakeview.pk}").content.decode()
    assert f'id="case-{cases[1].pk}"' in html and f'id="case-{cases[0].pk}"' not in html


def test_next_case_and_claim_over_http(world, cases, client):
    c = verified_client(client, world.reader2)
    got = c.post("/worklist/next/")
    assert got.status_code == 200 and got.json()["case_id"] == cases[0].pk  # not licensed in PA
    assert c.post("/worklist/next/").status_code == 404
    r = verified_client(client, world.reader)
    assert r.post(f"/worklist/cases/{cases[1].pk}/claim/").json()["ok"]


def test_preferences_page(world, client):
    c = verified_client(client, world.scheduler)
    assert c.get("/worklist/preferences/").status_code == 200
    c.post("/worklist/preferences/", {"email_stat": "on"})
    pref = world.scheduler.worklist_preference
    assert pref.email_stat and not pref.email_breach


def test_no_worklist_for_a_technologist(world, client, riverside):
    from accounts.models import Membership, Role

    from .conftest import _user

    tech = _user("tech")
    Membership.objects.create(user=tech, organization=riverside, role=Role.TECHNOLOGIST)
    client.force_login(tech)
    assert client.get("/worklist/").status_code == 404


def test_a_row_counts_the_childs_other_studies_as_links_change(world):
    from identity.models import PatientRecord, Person
    from worklist.queries import with_row_data

    study = make_study(world.riverside)
    case = services.open_case(study.pk)
    other = make_study(world.lakeview, "MR", "MR BRAIN")  # another hospital's record

    def priors() -> int:
        return with_row_data(Case.objects.filter(pk=case.pk)).get().priors

    assert priors() == 0
    linked = PatientRecord.objects.filter(pk=other.patient_record_id)
    linked.update(person=study.patient_record.person)
    assert priors() == 1
    linked.update(person=Person.objects.create())  # unlinked again
    assert priors() == 0
