"""viewer/ecg_intervals.py: QTc corrections, heart rate, pediatric flags.

Expected values are worked out here from the equations of CLINICAL.md ("ECG intervals"):
QT 400 ms at HR 75 -> RR = 60 / 75 = 0.8 s -> Bazett 400 / √0.8 = 447.21 ms, Fridericia
400 / ∛0.8 = 430.89 ms, Framingham 400 + 154 · 0.2 = 430.8 ms, Hodges 400 + 1.75 · 15 =
426.25 ms.
"""

from __future__ import annotations

import math

import pytest

from viewer.ecg_intervals import (
    NORMAL_LIMITS,
    QTC_BAZETT_UPPER_MS,
    age_band,
    flag_intervals,
    heart_rate_bpm,
    qtc_bazett,
    qtc_framingham,
    qtc_fridericia,
    qtc_hodges,
    rr_ms_from_hr,
)


def test_qtc_at_75_bpm_by_hand():
    rr = rr_ms_from_hr(75)
    assert rr == pytest.approx(800.0)
    assert qtc_bazett(400, rr) == pytest.approx(447.21, abs=0.01)
    assert qtc_fridericia(400, rr) == pytest.approx(430.89, abs=0.01)
    assert qtc_framingham(400, rr) == pytest.approx(430.8)
    assert qtc_hodges(400, rr) == pytest.approx(426.25)


def test_at_60_bpm_every_correction_returns_qt():
    for correct in (qtc_bazett, qtc_fridericia, qtc_framingham, qtc_hodges):
        assert correct(380, 1000) == pytest.approx(380)


def test_infant_heart_rate_bazett_corrects_more_than_fridericia():
    """At 150 bpm (RR 0.4 s) Bazett gives 280 / √0.4 = 442.7, Fridericia 280 / ∛0.4 = 380.0:
    the over-correction at high rates that is why both are shown."""
    assert qtc_bazett(280, 400) == pytest.approx(280 / math.sqrt(0.4))
    assert qtc_bazett(280, 400) == pytest.approx(442.72, abs=0.01)
    assert qtc_fridericia(280, 400) == pytest.approx(380.02, abs=0.01)


@pytest.mark.parametrize(("rr", "hr"), [(1000, 60), (800, 75), (400, 150), (333.3, 180.018)])
def test_heart_rate_from_rr(rr, hr):
    assert heart_rate_bpm(rr) == pytest.approx(hr, abs=0.001)


def test_age_bands_cover_every_day_in_order():
    assert [b.until_days for b in NORMAL_LIMITS] == sorted(b.until_days for b in NORMAL_LIMITS)
    assert age_band(0).label == "0-1 month"
    assert age_band(30).label == "0-1 month"
    assert age_band(31).label == "1-3 months"
    assert age_band(400).label == "1-3 years"
    assert age_band(14 * 365).label == "12-16 years"
    assert age_band(30 * 365).label == "12-16 years"  # adults: the oldest group studied


def test_newborn_rate_of_170_is_normal_but_a_tachycardia_at_14():
    assert flag_intervals(14, 170, 100, 60, 420) == []
    (flag,) = flag_intervals(14 * 365, 170, 140, 90, 420)
    assert (flag.name, flag.value, flag.limit) == ("heart_rate_high", 170, 100)
    assert "12-16 years" in flag.message and "Rijnbeek" in flag.message


def test_infant_flags():
    flags = {f.name: f for f in flag_intervals(10, 200, 130, 90, 470)}
    assert set(flags) == {"heart_rate_high", "pr_long", "qrs_wide", "qtc_prolonged"}
    assert flags["pr_long"].limit == 120
    assert flags["qrs_wide"].limit == 85
    assert flags["qtc_prolonged"].limit == QTC_BAZETT_UPPER_MS == 460
    assert "Fridericia" in flags["qtc_prolonged"].message


def test_teenager_flags_slow_rate_and_short_pr():
    flags = {f.name: f for f in flag_intervals(15 * 365, 40, 90, 100, 440)}
    assert set(flags) == {"heart_rate_low", "pr_short"}
    assert (flags["heart_rate_low"].limit, flags["pr_short"].limit) == (48, 107)


def test_qrs_of_100_is_wide_for_an_infant_not_for_a_teenager():
    assert [f.name for f in flag_intervals(200, 130, 110, 100, 420)] == ["qrs_wide"]
    assert flag_intervals(15 * 365, 70, 140, 100, 420) == []


def test_limits_are_exclusive():
    band = age_band(10)
    hr_low, hr_high = band.hr_bpm
    assert flag_intervals(10, hr_high, None, band.qrs_ms_upper, QTC_BAZETT_UPPER_MS) == []
    assert flag_intervals(10, hr_low, None, None, None) == []


def test_unknown_age_applies_only_the_qtc_limit():
    (flag,) = flag_intervals(None, 220, 250, 150, 480)
    assert flag.name == "qtc_prolonged"
    assert flag_intervals(None, 220, 250, 150, 440) == []


def test_missing_measurements_are_skipped():
    assert flag_intervals(10, None, None, None, None) == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: qtc_bazett(400, 0), "RR"),
        (lambda: qtc_bazett(400, -800), "RR"),
        (lambda: qtc_bazett(400, float("nan")), "RR"),
        (lambda: qtc_fridericia(400, float("inf")), "RR"),
        (lambda: qtc_bazett(400, 0.8), "implausible"),  # seconds where ms were expected
        (lambda: qtc_bazett(400, 9000), "implausible"),
        (lambda: qtc_bazett(0, 800), "QT"),
        (lambda: qtc_fridericia(-1, 800), "QT"),
        (lambda: qtc_bazett(True, 800), "QT"),
        (lambda: qtc_bazett("400", 800), "QT"),
        (lambda: heart_rate_bpm(0), "RR"),
        (lambda: rr_ms_from_hr(0), "heart rate"),
        (lambda: rr_ms_from_hr(float("nan")), "heart rate"),
        (lambda: flag_intervals(-1, 120, None, None, None), "age"),
        (lambda: flag_intervals(1.5, 120, None, None, None), "age"),
        (lambda: flag_intervals(10, 0, None, None, None), "heart rate"),
        (lambda: flag_intervals(10, None, float("nan"), None, None), "PR"),
        (lambda: flag_intervals(10, None, None, -80, None), "QRS"),
        (lambda: flag_intervals(10, None, None, None, 0), "QTc"),
    ],
)
def test_invalid_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
