"""MFA: users whose role reaches patient data must pass a TOTP code (or a recovery code)
after their password before any page but the MFA pages themselves."""

from __future__ import annotations

import re
from base64 import b32decode

import pytest
from django.contrib.auth import get_user_model
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from accounts.models import Membership, Organization, Role
from tests.accounts.conftest import READER_PASSWORD
from tests.accounts.helpers import current_code


def password_login(client, username: str = "drreader", password: str = READER_PASSWORD):
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content[:500]
    return response


@pytest.fixture
def enrolled_reader(reader_user):
    device = TOTPDevice.objects.create(user=reader_user, name="phone", confirmed=True)
    return reader_user, device


@pytest.mark.parametrize(
    ("role", "kind", "required"),
    [
        (Role.READER, Organization.Kind.READING_GROUP, True),
        (Role.SCHEDULER, Organization.Kind.READING_GROUP, True),
        (Role.ORG_ADMIN, Organization.Kind.READING_GROUP, True),
        (Role.ORG_ADMIN, Organization.Kind.SENDING_FACILITY, True),
        (Role.ADMIN, Organization.Kind.PLATFORM, True),
        (Role.REFERRING, Organization.Kind.SENDING_FACILITY, False),
        (Role.TECHNOLOGIST, Organization.Kind.SENDING_FACILITY, False),
    ],
)
def test_requires_mfa_by_role(db, role, kind, required):
    org = Organization.objects.create(name=f"Org {kind}", slug=f"org-{kind}", kind=kind)
    user = get_user_model().objects.create_user("u1")
    Membership.objects.create(user=user, organization=org, role=role)
    assert mfa.requires_mfa(user) is required


def test_requires_mfa_for_superusers_and_enrolled_users_not_for_inactive_roles(reader_user):
    User = get_user_model()
    assert mfa.requires_mfa(User.objects.create_superuser("root", password="x" * 12))
    plain = User.objects.create_user("plain")
    assert not mfa.requires_mfa(plain)
    TOTPDevice.objects.create(user=User.objects.get(pk=plain.pk), confirmed=True)
    assert mfa.requires_mfa(User.objects.get(pk=plain.pk))  # opted in: asked for it too
    Membership.objects.filter(user=reader_user).update(active=False)
    assert not mfa.requires_mfa(User.objects.get(pk=reader_user.pk))


def test_reader_without_totp_reaches_nothing_but_the_mfa_pages(client, reader_user):
    assert password_login(client)["Location"] == "/"
    for path in ("/", "/account/", "/admin/", "/org/", "/studies/1.2.3/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/account/mfa/enrol/?next="), path
    api = client.get("/api/whoami")
    assert api.status_code == 401 and api.json()["error"] == "insufficient_scope"
    assert client.get("/account/mfa/enrol/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_enrolled_reader_is_sent_to_verify_and_a_totp_code_opens_the_app(client, enrolled_reader):
    _user, device = enrolled_reader
    password_login(client)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/account/mfa/verify/?next=%2F"
    assert client.get("/account/").status_code == 302
    page = client.get(response["Location"])
    assert page.status_code == 200 and 'name="code"' in page.content.decode()
    response = client.post("/account/mfa/verify/", {"code": current_code(device), "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/account/").status_code == 200
    assert client.get("/api/whoami").json() == {"username": "drreader", "auth": "session"}


def test_wrong_code_is_refused_and_throttled(client, enrolled_reader):
    _user, device = enrolled_reader
    password_login(client)
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    response = client.post("/account/mfa/verify/", {"code": wrong})
    assert response.status_code == 200 and "did not match" in response.content.decode()
    assert client.get("/").status_code == 302
    # django-otp throttles after a failure: even the right code waits (exponential back-off).
    response = client.post("/account/mfa/verify/", {"code": current_code(device)})
    assert "wait" in response.content.decode() and client.get("/").status_code == 302
    device.refresh_from_db()
    device.throttle_reset()
    response = client.post("/account/mfa/verify/", {"code": current_code(device)})
    assert response.status_code == 302 and client.get("/").status_code == 200


def test_verify_ignores_an_offsite_next(client, enrolled_reader):
    _user, device = enrolled_reader
    password_login(client)
    response = client.post(
        "/account/mfa/verify/", {"code": current_code(device), "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_recovery_code_works_once(client, enrolled_reader):
    user, _device = enrolled_reader
    codes = mfa.new_recovery_codes(user)
    assert len(codes) == 10 and len(set(codes)) == 10
    password_login(client)
    response = client.post("/account/mfa/verify/", {"code": codes[0].upper(), "next": "/"})
    assert response.status_code == 302 and client.get("/").status_code == 200
    assert mfa.recovery_codes_left(user) == 9
    client.post("/logout/")
    password_login(client)
    response = client.post("/account/mfa/verify/", {"code": codes[0]})
    assert "did not match" in response.content.decode()
    assert client.get("/").status_code == 302


def test_enrolment_end_to_end(client, reader_user):
    password_login(client)
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == "/account/mfa/enrol/?next=%2F"
    page = response.content.decode()
    assert "<svg" in page and 'id="qr-path"' in page
    assert "<script" not in page.split("<main>")[1]  # inline SVG only, nothing executable
    # Be the phone: read the secret shown as text and compute the code from it.
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    key = b32decode(secret + "=" * (-len(secret) % 8))
    device = TOTPDevice.objects.get(user=reader_user)
    assert key == device.bin_key and not device.confirmed
    # Reloading shows the same secret: one pending device, not a new one per view.
    assert secret in client.get("/account/mfa/enrol/").content.decode().replace(" ", "")
    assert TOTPDevice.objects.filter(user=reader_user).count() == 1
    response = client.post(
        "/account/mfa/enrol/", {"code": f"{totp(key):06d}", "next": "/"}, follow=False
    )
    assert response.status_code == 200
    page = response.content.decode()
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", page)
    assert len(codes) == 10 and "shown only now" in page
    assert response["Cache-Control"].startswith("max-age=0")
    assert set(codes) == set(StaticToken.objects.values_list("token", flat=True))
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/").status_code == 200
    # Next sign-in: verification, not enrolment; a recovery code gets in.
    client.post("/logout/")
    password_login(client)
    assert client.get("/")["Location"].startswith("/account/mfa/verify/")
    response = client.post("/account/mfa/verify/", {"code": codes[3]})
    assert response.status_code == 302 and client.get("/").status_code == 200


def test_enrolment_refuses_a_wrong_code(client, reader_user):
    password_login(client)
    client.get("/account/mfa/enrol/")
    response = client.post("/account/mfa/enrol/", {"code": "000000"})
    device = TOTPDevice.objects.get(user=reader_user)
    if f"{totp(device.bin_key):06d}" == "000000":  # one in a million: the code was right
        pytest.skip("000000 happened to be the current code")
    assert response.status_code == 200 and "did not match" in response.content.decode()
    assert not device.confirmed and client.get("/").status_code == 302


def test_a_password_alone_cannot_replace_an_enrolled_device(client, enrolled_reader):
    user, device = enrolled_reader
    password_login(client)
    response = client.get("/account/mfa/enrol/")
    assert response.status_code == 302 and response["Location"].startswith("/account/mfa/verify/")
    response = client.post("/account/mfa/enrol/", {"code": "123456"})
    assert response.status_code == 302
    assert list(TOTPDevice.objects.filter(user=user)) == [device]


def test_users_without_an_mfa_role_are_not_asked(client, riverside, django_user_model):
    tech = django_user_model.objects.create_user("tech", password=READER_PASSWORD)
    Membership.objects.create(user=tech, organization=riverside, role=Role.TECHNOLOGIST)
    password_login(client, "tech")
    assert client.get("/").status_code == 200


def test_mfa_verification_rotates_the_session_key(client, enrolled_reader):
    _user, device = enrolled_reader
    password_login(client)
    before = client.cookies["sessionid"].value
    client.post("/account/mfa/verify/", {"code": current_code(device)})
    assert client.cookies["sessionid"].value != before
    assert client.get("/").status_code == 200


def test_used_up_recovery_codes_without_a_phone_lead_to_enrolment(client, reader_user):
    """After an admin deletes a lost phone's device and the codes are gone, enrol anew."""
    mfa.new_recovery_codes(reader_user)
    StaticToken.objects.all().delete()
    password_login(client)
    assert client.get("/")["Location"].startswith("/account/mfa/enrol/")


def test_a_wrong_totp_code_does_not_throttle_the_recovery_codes(client, enrolled_reader):
    user, device = enrolled_reader
    codes = mfa.new_recovery_codes(user)
    password_login(client)
    wrong = f"{(int(current_code(device)) + 1) % 1_000_000:06d}"
    assert "did not match" in client.post("/account/mfa/verify/", {"code": wrong}).content.decode()
    response = client.post("/account/mfa/verify/", {"code": codes[0]})
    assert response.status_code == 302 and client.get("/").status_code == 200


def test_staff_need_the_second_factor_before_the_django_admin(client, db):
    """Staff reach /admin/ (memberships, devices, the audit trail) with model permissions and
    no MFA role; a stolen password alone must not open it."""
    from django.contrib.auth.models import Permission

    officer = get_user_model().objects.create_user("officer", password="x" * 12, is_staff=True)
    officer.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    officer.user_permissions.add(Permission.objects.get(codename="change_membership"))
    assert mfa.requires_mfa(get_user_model().objects.get(pk=officer.pk))
    client.force_login(officer)
    for path in ("/admin/", "/admin/audit/auditevent/", "/admin/accounts/membership/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/account/mfa/enrol/?next="), path
