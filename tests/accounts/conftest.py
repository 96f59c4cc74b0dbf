"""Fixtures for the sign-in tests: a reading group and a reader who must use MFA."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Membership, Organization, Role

READER_PASSWORD = "correct horse battery staple"


@pytest.fixture
def reading_group(db):
    return Organization.objects.create(
        name="Northstar Pediatric Imaging", slug="northstar", kind=Organization.Kind.READING_GROUP
    )


@pytest.fixture
def reader_user(reading_group):
    """A pediatric radiologist: reading-group member with the `reader` role (MFA required)."""
    user = get_user_model().objects.create_user("drreader", password=READER_PASSWORD)
    Membership.objects.create(user=user, organization=reading_group, role=Role.READER)
    return user
