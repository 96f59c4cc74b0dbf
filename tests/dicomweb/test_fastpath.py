"""The rendered fast path (archive/dicomweb/fastpath.py, grants.py), driven through the real
ASGI application (readingroom.asgi) in-process: once a full Django request granted a
credential a study, its next frames of that study skip Django and are byte-for-byte and
header-for-header what Django sends; anything else still meets Django's checks."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.core.signals import request_started
from django.http import QueryDict
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiToken, Organization, ReadingAgreement, Role
from accounts.tokens import issue_token, revoke_token
from archive.dicomweb import grants
from archive.dicomweb.render_params import params_from_request
from archive.models import Instance
from audit.models import Action, AuditEvent
from identity.models import PatientRecord, Person
from identity.services import unlink_record
from tests.accounts.helpers import login_verified
from tests.asgi_client import Answer, asgi_request
from tests.conftest import wait_for
from tests.dicomweb.conftest import ApiUser, api_user, ingest, part10
from tests.dicomweb.test_wado import url
from viewer.frame_cache import frame_key, get_frame_cache


def asgi_get(path: str, headers: dict[str, str], host: str = "127.0.0.1") -> Answer:
    return async_to_sync(asgi_get_async)(path, headers, host)


async def asgi_get_async(path: str, headers: dict[str, str], host: str = "127.0.0.1") -> Answer:
    from readingroom.asgi import application

    return await asgi_request(application, path, headers, host)


@pytest.fixture
def django_requests():
    """How many requests reached Django (the fast path never sends request_started)."""
    seen = []

    def count(sender, **kwargs) -> None:
        seen.append(sender)

    request_started.connect(count, dispatch_uid="test_fastpath")
    yield seen
    request_started.disconnect(dispatch_uid="test_fastpath")


@pytest.fixture(autouse=True)
def fresh_grants():
    grants.grants.clear()
    yield
    grants.grants.clear()
    from readingroom.asgi import rendered_fast_path

    rendered_fast_path.close_connections()  # the test database is flushed and dropped later


@pytest.fixture
def stack(transactional_db, riverside):
    """Three CT slices of one series, as a viewer scrolls them."""
    first = ingest(part10("CT_small.dcm", PatientID="MRN-F1"), riverside)
    one = Instance.objects.select_related("series__study").get(pk=first.instance_id)
    uids = dict(
        StudyInstanceUID=one.series.study.study_instance_uid,
        SeriesInstanceUID=one.series.series_instance_uid,
        PatientID="MRN-F1",
    )
    rest = [ingest(part10("CT_small.dcm", **uids), riverside) for _ in range(2)]
    return [one] + [
        Instance.objects.select_related("series__study").get(pk=o.instance_id) for o in rest
    ]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "image/jpeg"}


def test_next_frames_of_a_granted_study_skip_django_and_match_it(tech, stack, django_requests):
    h = bearer(tech.token)
    first = asgi_get(url(stack[0], "/frames/1/rendered"), h)
    assert first.status == 200 and len(django_requests) == 1
    fast = asgi_get(url(stack[1], "/frames/1/rendered"), h)  # cold: never rendered
    # The frame cache is written after the answer went out, and then holds the picture.
    params = params_from_request(QueryDict(""), "image/jpeg")
    key = frame_key(stack[1].sop_instance_uid, stack[1].sha256, 1, params.cache_token())
    cached = wait_for(lambda: get_frame_cache().get(key))
    assert cached.content == fast.body
    again = asgi_get(url(stack[1], "/frames/1/rendered"), h)  # warm
    assert fast.status == again.status == 200
    assert len(django_requests) == 1, "served without Django"
    # Exactly what Django answers for the same frame, headers included.
    grants.grants.clear()
    slow = asgi_get(url(stack[1], "/frames/1/rendered"), h)
    assert len(django_requests) == 2
    assert fast.body == again.body == slow.body and fast.body[:2] == b"\xff\xd8"
    for name in ("content-type", "cache-control", "content-security-policy", "x-frame-options"):
        assert fast.headers[name] == slow.headers[name], name
    assert int(fast.headers["content-length"]) == len(fast.body)
    # The study's image view was audited once, by Django.
    assert (
        AuditEvent.objects.filter(action=Action.IMAGE_VIEW, study=stack[0].series.study).count()
        == 1
    )


def test_concurrent_frames_are_each_answered_right(tech, stack, settings, django_requests):
    """A viewer prefetching a stack sends many frames at once: more than the fast path's
    threads, cold and warm mixed. Every answer must be the picture Django renders for it."""
    h = bearer(tech.token)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), h).status == 200
    paths = [
        url(instance, f"/frames/1/rendered?window={center},400")
        for center in (0, 40, 80, 120)
        for instance in stack
    ] * 2  # each path twice: the second may meet the first's cache entry or render again

    async def all_at_once() -> list[Answer]:
        return await asyncio.gather(*(asgi_get_async(path, h) for path in paths))

    answers = async_to_sync(all_at_once)()
    assert len(django_requests) == 1, "all served by the fast path"
    settings.DICOMWEB_GRANT_SECONDS = 0  # from here on Django answers every request
    grants.grants.clear()
    expected = {path: asgi_get(path, h).body for path in set(paths)}
    assert len(django_requests) == 1 + len(expected)
    # The slices are copies of one image: a picture per window, not per slice.
    assert len(set(expected.values())) == 4, "each window gives its own picture"
    for path, answer in zip(paths, answers, strict=True):
        assert answer.status == 200, path
        assert answer.body == expected[path], path


def test_parameters_and_instance_level_rendered_take_the_fast_path(tech, stack, django_requests):
    h = bearer(tech.token)
    assert asgi_get(url(stack[0], "/rendered"), h).status == 200
    png = asgi_get(
        url(stack[2], "/rendered?window=40,400&viewport=64,64"), {**h, "Accept": "image/png"}
    )
    assert png.status == 200 and png.body[:4] == b"\x89PNG"
    assert png.headers["content-type"] == "image/png"
    assert len(django_requests) == 1


def test_a_grant_is_for_one_study_only(tech, outsider, stack, riverside, django_requests):
    other = ingest(part10("CT_small.dcm", PatientID="MRN-F2"), riverside)
    other = Instance.objects.select_related("series__study").get(pk=other.instance_id)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), bearer(tech.token)).status == 200
    assert asgi_get(url(other, "/frames/1/rendered"), bearer(tech.token)).status == 200
    assert len(django_requests) == 2  # another study: Django decided again
    # Someone else's credential never rides on tech's grant: invisible is 404, from Django.
    denied = asgi_get(url(stack[1], "/frames/1/rendered"), bearer(outsider.token))
    assert denied.status == 404 and len(django_requests) == 3
    # A series or instance of another study, under a granted study's UID: not found.
    forged = url(stack[0], "/frames/1/rendered").replace(
        stack[0].sop_instance_uid, other.sop_instance_uid
    )
    assert asgi_get(forged, bearer(tech.token)).status == 404


def test_bad_requests_still_get_djangos_answers(tech, stack, django_requests):
    h = bearer(tech.token)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), h).status == 200
    bad = asgi_get(url(stack[1], "/frames/1/rendered?quality=900"), h)
    assert bad.status == 400 and b"quality" in bad.body
    assert asgi_get(url(stack[1], "/frames/9/rendered"), h).status == 404
    assert asgi_get(url(stack[1], "/frames/1/rendered"), {**h, "Accept": "text/html"}).status == 406
    missing = url(stack[1], "/frames/1/rendered").replace(stack[1].sop_instance_uid, "1.2.3.4")
    assert asgi_get(missing, h).status == 404
    assert len(django_requests) == 5


def test_a_host_django_refuses_is_refused(tech, stack, django_requests):
    h = bearer(tech.token)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), h).status == 200
    assert asgi_get(url(stack[1], "/frames/1/rendered"), h, host="evil.example").status == 400
    assert len(django_requests) == 2


def test_revoking_the_token_ends_its_grants_at_once(tech, stack, django_requests):
    h = bearer(tech.token)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), h).status == 200
    revoke_token(ApiToken.objects.get(user=tech.user))
    refused = asgi_get(url(stack[1], "/frames/1/rendered"), h)
    assert refused.status == 401 and len(django_requests) == 2


def test_a_grant_never_outlives_its_token(tech, stack):
    row, token = issue_token(tech.user, "short")
    ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() + timedelta(seconds=2))
    assert asgi_get(url(stack[0], "/frames/1/rendered"), bearer(token)).status == 200
    who = grants.credential(f"Bearer {token}", None)
    assert grants.grants.allows(who, stack[0].series.study.study_instance_uid)
    until, _ = grants.grants._grants[(who, stack[0].series.study.study_instance_uid)]
    assert until - time.monotonic() <= 2.0


def test_session_grants_end_with_sign_out(tech, stack, django_requests):
    browser = Client()
    browser.force_login(tech.user)
    cookie = browser.cookies["sessionid"].value
    h = {"Cookie": f"sessionid={cookie}", "Accept": "image/jpeg"}
    assert asgi_get(url(stack[0], "/frames/1/rendered"), h).status == 200
    assert asgi_get(url(stack[1], "/frames/1/rendered"), h).status == 200
    assert len(django_requests) == 1
    browser.logout()
    after = asgi_get(url(stack[2], "/frames/1/rendered"), h)
    assert after.status == 401 and len(django_requests) == 2


def test_grants_off_sends_everything_to_django(tech, stack, settings, django_requests):
    settings.DICOMWEB_GRANT_SECONDS = 0
    for instance in stack:
        assert asgi_get(url(instance, "/frames/1/rendered"), bearer(tech.token)).status == 200
    assert len(django_requests) == 3 and len(grants.grants) == 0


# --- changes to what the policy reads end grants at once (accounts/access_changes.py) ---------


def granted(user: ApiUser, stack, django_requests) -> dict[str, str]:
    """A first frame through Django grants the study; the second takes the fast path."""
    h = bearer(user.token)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), h).status == 200
    assert asgi_get(url(stack[1], "/frames/1/rendered"), h).status == 200
    assert len(django_requests) == 1, "the second frame skipped Django"
    return h


def test_deactivating_the_account_ends_its_grants_at_once(tech, stack, django_requests):
    h = granted(tech, stack, django_requests)
    tech.user.is_active = False
    tech.user.save()
    refused = asgi_get(url(stack[2], "/frames/1/rendered"), h)
    assert refused.status == 401 and len(django_requests) == 2


def test_ending_the_membership_ends_its_grants_at_once(tech, stack, django_requests):
    h = granted(tech, stack, django_requests)
    membership = tech.user.memberships.get()
    membership.active = False
    membership.save(update_fields=["active"])  # as the org-admin page does
    refused = asgi_get(url(stack[2], "/frames/1/rendered"), h)
    assert refused.status == 404 and len(django_requests) == 2


def test_ending_the_reading_agreement_ends_the_readers_grants(riverside, stack, django_requests):
    group = Organization.objects.create(
        name="Northstar", slug="northstar", kind=Organization.Kind.READING_GROUP
    )
    agreement = ReadingAgreement.objects.create(reading_group=group, sending_facility=riverside)
    reader = api_user("reader", group, Role.READER)
    h = granted(reader, stack, django_requests)
    agreement.active = False
    agreement.save()
    refused = asgi_get(url(stack[2], "/frames/1/rendered"), h)
    assert refused.status == 404 and len(django_requests) == 2


def test_undoing_an_identity_link_ends_every_grant(tech, riverside, lakeview, stack):
    granted_to = bearer(tech.token)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), granted_to).status == 200
    assert len(grants.grants) == 1
    person = Person.objects.create()
    here = PatientRecord.objects.create(organization=riverside, patient_id="A1", person=person)
    PatientRecord.objects.create(organization=lakeview, patient_id="B1", person=person)
    unlink_record(here, tech.user, "not the same child")
    assert len(grants.grants) == 0


def test_a_sign_in_elsewhere_keeps_the_grants(tech, stack, django_requests):
    h = granted(tech, stack, django_requests)
    update_last_login(None, tech.user)  # saves last_login only: nothing the policy reads
    assert asgi_get(url(stack[2], "/frames/1/rendered"), h).status == 200
    assert len(django_requests) == 1


def test_a_revocation_during_the_access_check_prevents_the_grant(
    tech, stack, django_requests, monkeypatch
):
    """The revocation lands after the view checked access and before it grants: no grant."""
    from archive.dicomweb import views

    audit_image = views._audit_image

    def audit_then_revoke(request, study):
        audited_at = audit_image(request, study)
        grants.revoke(grants.user_key(tech.user.pk))
        return audited_at

    monkeypatch.setattr(views, "_audit_image", audit_then_revoke)
    h = bearer(tech.token)
    assert asgi_get(url(stack[0], "/frames/1/rendered"), h).status == 200
    assert len(grants.grants) == 0
    assert asgi_get(url(stack[1], "/frames/1/rendered"), h).status == 200
    assert len(django_requests) == 2, "the next frame went through Django again"


def test_the_admins_bulk_token_revocation_ends_grants_and_is_audited(tech, stack, django_requests):
    h = granted(tech, stack, django_requests)
    admin = get_user_model().objects.create_superuser("root", password="y" * 20)
    browser = Client()
    login_verified(browser, admin)
    token = ApiToken.objects.get(user=tech.user)
    changelist = reverse("admin:accounts_apitoken_changelist")
    answer = browser.post(changelist, {"action": "revoke", "_selected_action": [token.pk]})
    assert answer.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action=Action.TOKEN_REVOKE)
    assert event.user_id == admin.pk and event.detail["owner"] == "tech"
    refused = asgi_get(url(stack[2], "/frames/1/rendered"), h)
    assert refused.status == 401


# --- the store itself ------------------------------------------------------------------------


def test_store_expires_bounds_and_revokes():
    store = grants.GrantStore(max_grants=2)
    now = time.monotonic()
    store.grant("t:a", "1.2", now + 60)
    store.grant("t:a", "1.3", now + 0.05)
    assert store.allows("t:a", "1.2") and store.allows("t:a", "1.3")
    time.sleep(0.06)
    assert not store.allows("t:a", "1.3")  # expired
    store.grant("t:b", "1.4", now + 60)
    store.grant("t:c", "1.5", now + 60)  # over the bound: the least recently used goes
    assert not store.allows("t:a", "1.2") and store.allows("t:c", "1.5")
    assert store.revoke("t:c") == 1 and not store.allows("t:c", "1.5")
    store.grant("t:d", "1.6", now - 1)  # already over: not kept
    assert not store.allows("t:d", "1.6")


def test_store_revokes_by_user_and_all_and_refuses_stale_grants():
    store = grants.GrantStore()
    later = time.monotonic() + 60
    store.grant("t:a", "1.2", later, "u:1")
    store.grant("s:b", "1.2", later, "u:1")
    store.grant("t:c", "1.2", later, "u:2")
    assert store.revoke("u:1") == 2
    assert not store.allows("s:b", "1.2") and store.allows("t:c", "1.2")
    seen = store.generation
    assert store.grant("t:d", "1.3", later, "u:3", seen)
    store.revoke("t:someone-else")
    assert not store.grant("t:d", "1.4", later, "u:3", seen), "revoked since it was read"
    assert store.revoke(grants.EVERYONE) == 2 and len(store) == 0


def test_credential_follows_the_middleware_rule():
    assert grants.credential("Bearer abc", "sess") == grants.credential("bearer abc", None)
    assert grants.credential("Basic abc", "sess") == grants.credential(None, "sess")
    assert grants.credential("Bearer ", None) is None
    assert grants.credential(None, None) is None
    assert grants.credential("Bearer abc", None) != grants.credential(None, "abc")
