"""Pediatric age format at the study date (CLINICAL.md: days under 1 month, months and days
under 2 years, years after), checked on the boundaries by hand-counted calendars."""

from __future__ import annotations

from datetime import date

import pytest

from identity.ages import age_parts, pediatric_age


@pytest.mark.parametrize(
    ("birth", "on", "expected"),
    [
        (date(2026, 11, 20), date(2026, 11, 20), "0 d"),
        (date(2026, 11, 20), date(2026, 11, 26), "6 d"),
        # Born on the 31st: the monthly anniversary falls on the last day of a shorter month.
        (date(2026, 1, 31), date(2026, 3, 2), "1 mo 2 d"),
        (date(2026, 10, 15), date(2026, 11, 14), "30 d"),
        (date(2026, 10, 15), date(2026, 11, 15), "1 mo"),
        (date(2024, 8, 2), date(2026, 11, 25), "2 y"),
        (date(2024, 12, 2), date(2026, 11, 25), "23 mo 23 d"),
        (date(2025, 1, 31), date(2025, 2, 27), "27 d"),
        (date(2025, 1, 31), date(2025, 2, 28), "1 mo"),
        (date(2025, 1, 31), date(2025, 3, 1), "1 mo 1 d"),
        (date(2019, 3, 14), date(2026, 10, 2), "7 y"),
        (date(2019, 3, 14), date(2026, 3, 13), "6 y"),
    ],
)
def test_pediatric_age(birth, on, expected):
    assert pediatric_age(birth, on) == expected


def test_unknown_or_impossible_dates_show_nothing():
    assert pediatric_age(None, date(2026, 1, 1)) == ""
    assert pediatric_age(date(2026, 1, 1), None) == ""
    assert pediatric_age(date(2026, 1, 2), date(2026, 1, 1)) == ""


def test_age_parts_leap_day_birth():
    # Born 29 Feb: in a common year the monthly anniversary falls on 28 Feb.
    assert age_parts(date(2024, 2, 29), date(2025, 2, 28)) == (1, 0, 0)
    assert age_parts(date(2024, 2, 29), date(2025, 3, 1)) == (1, 0, 1)
