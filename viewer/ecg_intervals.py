"""ECG interval arithmetic and pediatric normal limits: pure functions, no I/O.

Equations (../shared/CLINICAL.md, "ECG intervals"), with RR in seconds:

- RR = 60 / HR; HR = 60 / RR.
- Bazett 1920: QTc = QT / √RR. The most consistent correction in infants and young children,
  but it over-corrects at high heart rates, so Fridericia is shown beside it.
- Fridericia 1920: QTc = QT / ∛RR.
- Framingham (Sagie 1992): QTc = QT + 0.154 · (1 − RR) (s), i.e. + 154 · (1 − RR) ms.
- Hodges 1983: QTc = QT + 1.75 · (HR − 60) (ms).

Every function takes and returns milliseconds (bpm for rates) because that is what readers
and ECG machines report; inputs that cannot be a measurement raise ValueError rather than
produce a confident wrong number.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["AgeBand", "Flag", "NORMAL_LIMITS", "QTC_BAZETT_UPPER_MS", "age_band"]
__all__ += ["flag_intervals", "heart_rate_bpm", "qtc_bazett", "qtc_framingham"]
__all__ += ["qtc_fridericia", "qtc_hodges", "rr_ms_from_hr"]

# Plausibility, not normality: outside these a value is a unit or typing error.
RR_RANGE_MS = (150.0, 4000.0)  # HR 15..400 bpm
HR_RANGE_BPM = (15.0, 400.0)
QT_RANGE_MS = (100.0, 1000.0)
PR_RANGE_MS = (40.0, 600.0)
QRS_RANGE_MS = (20.0, 400.0)
MAX_AGE_DAYS = 120 * 366

# QTc (Bazett) above 460 ms is about +2 SD in children (CLINICAL.md; Rijnbeek 2001), at
# every age: the one limit applied when the age is unknown.
QTC_BAZETT_UPPER_MS = 460.0


@dataclass(frozen=True)
class AgeBand:
    """Normal limits of one age group: the 2nd and 98th percentiles."""

    label: str
    until_days: int  # exclusive upper bound of the age in days
    hr_bpm: tuple[float, float]
    pr_ms: tuple[float, float]
    qrs_ms_upper: float


# Rijnbeek PR et al. New normal limits for the paediatric electrocardiogram. Eur Heart J
# 2001;22:702-711, 1912 healthy Dutch children, 1200 Hz, 9 age groups; the 2nd-98th
# percentiles of the boys (whose QRS limits are the wider ones, so girls are not
# over-flagged). Davignon A et al., Pediatr Cardiol 1979;1:123-131 is the older reference
# with the same percentile convention. Transcribed by hand: see the project's report before
# relying on a value clinically.
#
# | age          | HR (bpm) | PR (ms) | QRS upper (ms) |
# |--------------|----------|---------|----------------|
# | 0-1 month    | 129-192  | 77-120  | 85             |
# | 1-3 months   | 126-187  | 85-120  | 77             |
# | 3-6 months   | 112-165  | 87-134  | 85             |
# | 6-12 months  | 106-154  | 82-141  | 86             |
# | 1-3 years    | 97-155   | 86-151  | 88             |
# | 3-5 years    | 73-123   | 98-152  | 92             |
# | 5-8 years    | 62-113   | 99-160  | 98             |
# | 8-12 years   | 55-102   | 105-171 | 103            |
# | 12-16 years  | 48-100   | 107-177 | 111            |
NORMAL_LIMITS: tuple[AgeBand, ...] = (
    AgeBand("0-1 month", 31, (129, 192), (77, 120), 85),
    AgeBand("1-3 months", 92, (126, 187), (85, 120), 77),
    AgeBand("3-6 months", 183, (112, 165), (87, 134), 85),
    AgeBand("6-12 months", 366, (106, 154), (82, 141), 86),
    AgeBand("1-3 years", 1096, (97, 155), (86, 151), 88),
    AgeBand("3-5 years", 1827, (73, 123), (98, 152), 92),
    AgeBand("5-8 years", 2922, (62, 113), (99, 160), 98),
    AgeBand("8-12 years", 4383, (55, 102), (105, 171), 103),
    AgeBand("12-16 years", 5845, (48, 100), (107, 177), 111),
)


@dataclass(frozen=True)
class Flag:
    name: str  # machine name: "heart_rate_high", "pr_long", "qtc_prolonged"...
    value: float
    limit: float  # the limit crossed
    message: str  # for the reader, with the age group and the source


def _measurement(name: str, value: float, bounds: tuple[float, float], unit: str) -> float:
    """A finite positive number inside the plausible range, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number of {unit}, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number of {unit}, got {value!r}")
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"{name} {value:g} {unit} is implausible (expected {low:g}-{high:g})")
    return float(value)


def _rr_s(rr_ms_value: float) -> float:
    return _measurement("RR", rr_ms_value, RR_RANGE_MS, "ms") / 1000.0


def heart_rate_bpm(rr_ms: float) -> float:
    """HR = 60 / RR (RR in s): beats per minute from the RR interval in ms."""
    return 60.0 / _rr_s(rr_ms)


def rr_ms_from_hr(hr_bpm: float) -> float:
    """RR = 60 / HR (s), returned in ms: for machines that report only the rate."""
    return 60_000.0 / _measurement("heart rate", hr_bpm, HR_RANGE_BPM, "bpm")


def qtc_bazett(qt_ms: float, rr_ms: float) -> float:
    """Bazett: QTc = QT / √RR, RR in seconds, QT and QTc in ms (CLINICAL.md)."""
    return _measurement("QT", qt_ms, QT_RANGE_MS, "ms") / math.sqrt(_rr_s(rr_ms))


def qtc_fridericia(qt_ms: float, rr_ms: float) -> float:
    """Fridericia: QTc = QT / ∛RR, RR in seconds; less over-correction than Bazett at the
    heart rates of infants (CLINICAL.md)."""
    return _measurement("QT", qt_ms, QT_RANGE_MS, "ms") / _rr_s(rr_ms) ** (1 / 3)


def qtc_framingham(qt_ms: float, rr_ms: float) -> float:
    """Framingham: QTc = QT + 0.154 · (1 − RR) in seconds, i.e. QT + 154 · (1 − RR) ms."""
    return _measurement("QT", qt_ms, QT_RANGE_MS, "ms") + 154.0 * (1.0 - _rr_s(rr_ms))


def qtc_hodges(qt_ms: float, rr_ms: float) -> float:
    """Hodges: QTc = QT + 1.75 · (HR − 60) ms, HR = 60 / RR."""
    return _measurement("QT", qt_ms, QT_RANGE_MS, "ms") + 1.75 * (heart_rate_bpm(rr_ms) - 60)


def age_band(age_days: int) -> AgeBand:
    """The age group of NORMAL_LIMITS; past 16 years the 12-16 limits (the oldest group
    studied), which the flag messages name so the reader knows."""
    if isinstance(age_days, bool) or not isinstance(age_days, numbers.Integral):
        raise ValueError(f"age must be a whole number of days, got {age_days!r}")
    if not 0 <= age_days <= MAX_AGE_DAYS:
        raise ValueError(f"age {age_days} days is implausible")
    return next((b for b in NORMAL_LIMITS if int(age_days) < b.until_days), NORMAL_LIMITS[-1])


def flag_intervals(
    age_days: int | None,
    hr_bpm: float | None,
    pr_ms: float | None,
    qrs_ms: float | None,
    qtc_bazett_ms: float | None,
) -> list[Flag]:
    """Measurements outside the normal limits for the child's age.

    A None measurement is skipped (not every machine reports every interval). Without an
    age only the QTc limit applies: a heart rate of 150 is normal at 2 weeks and a
    tachycardia at 12 years, so guessing would mislead.
    """
    hr = None if hr_bpm is None else _measurement("heart rate", hr_bpm, HR_RANGE_BPM, "bpm")
    pr = None if pr_ms is None else _measurement("PR", pr_ms, PR_RANGE_MS, "ms")
    qrs = None if qrs_ms is None else _measurement("QRS", qrs_ms, QRS_RANGE_MS, "ms")
    qtc = None if qtc_bazett_ms is None else _measurement("QTc", qtc_bazett_ms, QT_RANGE_MS, "ms")
    flags: list[Flag] = []
    if age_days is not None:
        band = age_band(age_days)
        flags += _range_flags("heart_rate", "heart rate", hr, band.hr_bpm, "bpm", band)
        flags += _range_flags("pr", "PR", pr, band.pr_ms, "ms", band)
        if qrs is not None and qrs > band.qrs_ms_upper:
            flags.append(_flag("qrs_wide", "QRS", qrs, band.qrs_ms_upper, "ms", "above", band))
    if qtc is not None and qtc > QTC_BAZETT_UPPER_MS:
        message = (
            f"QTc (Bazett) {qtc:g} ms is above {QTC_BAZETT_UPPER_MS:g} ms (≈ +2 SD in children);"
            " Bazett over-corrects at high heart rates: compare Fridericia"
        )
        flags.append(Flag("qtc_prolonged", qtc, QTC_BAZETT_UPPER_MS, message))
    return flags


_HIGH_NAMES = {"heart_rate": "heart_rate_high", "pr": "pr_long"}
_LOW_NAMES = {"heart_rate": "heart_rate_low", "pr": "pr_short"}


def _range_flags(
    key: str,
    label: str,
    value: float | None,
    limits: tuple[float, float],
    unit: str,
    band: AgeBand,
) -> list[Flag]:
    if value is None:
        return []
    low, high = limits
    if value > high:
        return [_flag(_HIGH_NAMES[key], label, value, high, unit, "above", band)]
    if value < low:
        return [_flag(_LOW_NAMES[key], label, value, low, unit, "below", band)]
    return []


def _flag(
    name: str, label: str, value: float, limit: float, unit: str, side: str, band: AgeBand
) -> Flag:
    percentile = "98th" if side == "above" else "2nd"
    message = (
        f"{label} {value:g} {unit} is {side} {limit:g} {unit}, the {percentile} percentile"
        f" for {band.label} (Rijnbeek 2001)"
    )
    return Flag(name, value, float(limit), message)
