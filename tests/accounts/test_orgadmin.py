"""Org admins manage their own organisation only; everyone else gets 404."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import DicomNode, Membership, Organization, Role


@pytest.fixture
def people(db, riverside, lakeview):
    group = Organization.objects.create(
        name="Northstar", slug="northstar", kind=Organization.Kind.READING_GROUP
    )
    User = get_user_model()
    users = {
        n: User.objects.create_user(n, password="pw-" + n * 3)
        for n in ("groupadmin", "siteadmin", "newreader", "tech")
    }
    Membership.objects.create(user=users["groupadmin"], organization=group, role=Role.ORG_ADMIN)
    Membership.objects.create(user=users["siteadmin"], organization=riverside, role=Role.ORG_ADMIN)
    Membership.objects.create(user=users["tech"], organization=riverside, role=Role.TECHNOLOGIST)
    return users, group


def login(client, user):
    from tests.accounts.helpers import login_verified

    login_verified(client, user)


def test_group_admin_adds_a_reader_to_their_group(client, people):
    users, group = people
    login(client, users["groupadmin"])
    page = client.get("/org/", follow=True)
    assert page.status_code == 200 and "Northstar" in page.content.decode()
    client.post("/org/northstar/members/", {"username": "newreader", "role": "reader"})
    assert Membership.objects.filter(
        user=users["newreader"], organization=group, role=Role.READER, active=True
    ).exists()


def test_group_admin_cannot_grant_platform_admin_or_sending_roles(client, people):
    users, group = people
    login(client, users["groupadmin"])
    for role in ("admin", "technologist", "referring"):
        client.post("/org/northstar/members/", {"username": "newreader", "role": role})
    assert not Membership.objects.filter(user=users["newreader"]).exists()


def test_admin_of_one_org_gets_404_for_another(client, people, lakeview):
    users, _ = people
    login(client, users["groupadmin"])
    assert client.get("/org/riverside/").status_code == 404
    assert (
        client.post(
            "/org/riverside/members/", {"username": "newreader", "role": "technologist"}
        ).status_code
        == 404
    )
    assert client.post("/org/lakeview/nodes/", {"ae_title": "EVIL"}).status_code == 404
    assert not DicomNode.objects.filter(ae_title="EVIL").exists()
    other = Membership.objects.get(user=users["tech"])
    url = f"/org/northstar/members/{other.pk}/active/"
    assert client.post(url, {"active": "0"}).status_code == 404
    assert Membership.objects.get(pk=other.pk).active


def test_non_admins_get_404(client, people):
    users, _ = people
    login(client, users["tech"])
    assert client.get("/org/").status_code == 404
    assert client.get("/org/riverside/").status_code == 404


def test_site_admin_manages_dicom_nodes(client, people, riverside):
    users, _ = people
    login(client, users["siteadmin"])
    client.post("/org/riverside/nodes/", {"ae_title": "RCH_US", "host": "10.0.0.5", "port": "104"})
    node = DicomNode.objects.get(ae_title="RCH_US")
    assert node.organization == riverside and node.enabled
    client.post(f"/org/riverside/nodes/{node.pk}/enabled/", {"enabled": "0"})
    assert not DicomNode.objects.get(pk=node.pk).enabled
    page = client.post("/org/riverside/nodes/", {"ae_title": "rch_us"}, follow=True)
    assert "already in use" in page.content.decode()
    bad = client.post("/org/riverside/nodes/", {"ae_title": "BAD\\AE"}, follow=True)
    assert "AE title" in bad.content.decode()
    assert DicomNode.objects.filter(organization=riverside).count() == 2


def test_admin_cannot_drop_own_admin_role(client, people):
    users, _ = people
    login(client, users["siteadmin"])
    own = Membership.objects.get(user=users["siteadmin"])
    client.post(f"/org/riverside/members/{own.pk}/active/", {"active": "0"})
    assert Membership.objects.get(pk=own.pk).active


def test_admin_cannot_grant_themselves_a_role(client, people):
    """An org admin who is no radiologist must not make themselves a reader (and sign
    reports): a change to one's own access needs another administrator."""
    users, group = people
    login(client, users["groupadmin"])
    page = client.post(
        "/org/northstar/members/", {"username": "groupadmin", "role": "reader"}, follow=True
    )
    assert "your own" in page.content.decode()
    assert not Membership.objects.filter(user=users["groupadmin"], role=Role.READER).exists()
    # Nor reactivate a role of their own that another admin switched off.
    old = Membership.objects.create(
        user=users["groupadmin"], organization=group, role=Role.SCHEDULER, active=False
    )
    client.post(f"/org/northstar/members/{old.pk}/active/", {"active": "1"})
    assert not Membership.objects.get(pk=old.pk).active
    # Giving up a role of their own (other than admin) stays possible.
    old.active = True
    old.save(update_fields=["active"])
    client.post(f"/org/northstar/members/{old.pk}/active/", {"active": "0"})
    assert not Membership.objects.get(pk=old.pk).active
