"""Ids and filters a browser could send malformed: a 400 with a reason, never a 500."""

from __future__ import annotations

import pytest

from worklist import services

from .conftest import make_study, verified_client


@pytest.fixture
def case(world):
    return services.open_case(make_study(world.riverside).pk)


@pytest.mark.django_db
def test_a_unicode_digit_reader_id_is_a_400(world, case, client):
    """'²'.isdigit() is true, but int('²') raises."""
    c = verified_client(client, world.scheduler)
    c.raise_request_exception = False
    response = c.post(f"/worklist/cases/{case.pk}/assign/", {"reader": "²"})
    assert response.status_code == 400 and response.json()["code"] == "no_reader"


@pytest.mark.django_db
def test_a_unicode_digit_case_id_in_bulk_assign_is_a_400(world, case, client):
    c = verified_client(client, world.scheduler)
    c.raise_request_exception = False
    response = c.post("/worklist/bulk-assign/", {"case": ["²"], "reader": str(world.reader.pk)})
    assert response.status_code == 400 and response.json()["code"] == "no_cases"


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["99999999999999999999999", "-99999999999999999999999", "0"])
@pytest.mark.parametrize("path", ["/worklist/", "/worklist/table/"])
def test_an_out_of_range_facility_filter_is_a_400(world, case, client, path, value):
    """SQLite cannot even compare a foreign key with an integer past 2**63 (OverflowError)."""
    c = verified_client(client, world.scheduler)
    c.raise_request_exception = False
    response = c.get(path, {"facility": value})
    assert response.status_code == 400, response.status_code
