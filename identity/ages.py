"""A child's age at a date, written the way pediatric readers read it.

Days under one month, months and days under two years, whole years after (CLINICAL.md,
"Age is computed at the study date"). An age is always computed at the study date, never
"today": a prior from three years ago shows the child as they were then.
"""

from __future__ import annotations

from datetime import date, timedelta


def _months_between(birth: date, on: date) -> tuple[int, int]:
    """Whole calendar months from birth to on, and the days left over."""
    months = (on.year - birth.year) * 12 + (on.month - birth.month)
    month_end = (on + timedelta(days=1)).month != on.month
    if on.day < birth.day and not month_end:
        # A monthly anniversary that does not exist (31st, 29 Feb) falls on the month's end.
        months -= 1
    anchor_year, anchor_month = divmod(birth.month - 1 + months, 12)
    anchor = _clamped(birth.year + anchor_year, anchor_month + 1, birth.day)
    return months, (on - anchor).days


def _clamped(year: int, month: int, day: int) -> date:
    """The date, with the day pulled back to the month's last day (born 31 Jan -> 28 Feb)."""
    for candidate in (day, 30, 29, 28):
        try:
            return date(year, month, min(day, candidate))
        except ValueError:
            continue
    raise ValueError("unreachable")


def age_parts(birth: date, on: date) -> tuple[int, int, int]:
    """(years, months, days) from birth to on; on must not be before birth."""
    months, days = _months_between(birth, on)
    return months // 12, months % 12, days


def pediatric_age(birth: date | None, on: date | None) -> str:
    """ "12 d", "3 mo 12 d", "7 y"; "" when either date is unknown or the study predates birth
    (a wrong date must show as unknown, not as a made-up age)."""
    if birth is None or on is None or on < birth:
        return ""
    total_days = (on - birth).days
    months, days = _months_between(birth, on)
    if months < 1:
        return f"{total_days} d"
    if months < 24:
        return f"{months} mo {days} d" if days else f"{months} mo"
    return f"{months // 12} y"
