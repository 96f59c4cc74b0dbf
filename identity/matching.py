"""The master patient index matcher for children: pure functions, no database, no Django.

    normalise -> blocking_keys (candidate search) -> compare (evidence, score, veto) -> decide

Records, normalisation, placeholders and blocking keys live in identity/demographics.py, name
data (frequencies, nicknames, placeholder words) in identity/names.py; this module re-exports
the record API and holds the weights, the comparison and the decision.

Model. A Fellegi-Sunter score: every field comparison has an outcome ("agree", "typo",
"nickname", "day_month_swap", ...) whose weight is log2(m / u), m = P(outcome | same child),
u = P(outcome | two different children), given both records have the field (a missing field
weighs 0); the score is the sum, a log2 likelihood ratio. Four corrections to the
independence the model assumes, each for a pediatric reality:

* Household. Family name, postcode, phone, mother's maiden name and parent name say "same
  household" far more than "same child": siblings and twins share them all. Their sum is
  capped at HOUSEHOLD_CAP = 20 bits (one household among ~500,000 in a catchment of 1,000,000
  children is ~19 bits), so what tells the children of a household apart (given name, birth
  date, sex) must agree too.
* Corroboration. Name, birth date and sex of a common name (SMITH^JAMES, born the same day in
  another town) are not independent of chance the way their weights assume, so a link without
  an agreeing postcode, phone, mother's maiden name or parent name needs
  AUTO_LINK_UNCORROBORATED; a placeholder or missing given name needs two of them.
* Newborn placeholders ("BABY GIRL", "BB", "TWIN A", "INFANT OF <mother>", ...) carry no
  given-name evidence (weight 0). Their surname is often the mother's, so it is compared with
  the other record's family, mother's maiden and parent names. A link then rests on birth
  date, sex and household, and only when a record says the birth was a singleton or both give
  the same birth order; otherwise the pair goes to review.
* Multiple births. Twins and triplets share birth date, surname, parents, address and phone,
  so compare() sets a veto that decide() obeys whatever the score:
    - "twins: ..." (kept apart): same or near birth date and household with different given
      names (not nickname, typo, middle name or placeholder), different stated birth orders,
      or a multiple-birth placeholder of the other sex;
    - "possible multiple birth: ..." (review at most): same birth and household with given
      names only similar (JADEN/JAYDEN: both real names), an initial or a middle name used as
      given; a placeholder or missing given name without singleton evidence; a record flagged
      as a multiple birth whose given names are not identical;
    - "sex conflict: ..." (review at most).
  Not caught: co-twins whose names are one letter apart (ISLA/ISLAE, at least one not a known
  name) when no record flags the multiple birth: that is indistinguishable from a typo.

Where the numbers come from (M_U below marks each "c" counted or "j" judgment).
* u of name agreement: the name's share of the population (identity/names.py: US Census 2010
  surname ranks and SSA given-name ranks through a fitted power law; given names within the
  agreed sex; middle names with the most common ones at 4 %). A shared part of a compound
  surname: 10 % of the part's share.
* u of birth-date agreement: 1 / 6,575 (0-18 years of birth dates); a day/month swap is 40 % as
  likely by chance (the day must be <= 12).
* Everything else: counted on labelled pairs of the synthetic population (identity/synthetic.py;
  `.venv/bin/python bench/identity_quality.py --estimate --seed 11`: m over all 36,000 pairs of
  records of one child, u over 400,000 random pairs of different children, both given the
  field is present), rounded. Judgment replaced a count where the generator makes no such error
  (middle-name or multiple-birth disagreement) or its geography is not the world's (postcode
  and phone u at a 1,000,000-children scale). The generator's error rates are plausible
  guesses, not measurements from a real index: re-estimate from review-queue decisions.
* Thresholds. With ~1,000,000 records, a given record is a priori one in a million to be the
  same child as another (-20 bits). AUTO_LINK = 30 asks for posterior odds of ~1,000:1 before
  the machine links; REVIEW = 16 is odds of ~1:16, below which review wastes a steward's time.
  AUTO_LINK_UNCORROBORATED = 34 (16 times more evidence) was set on the benchmark, whose
  population plants same-name same-day strangers far more often than a real one holds them:
  the lowest value with no more than a few false links per 20,000 children (tuned on seeds
  11-14, checked on 21-23; see bench/identity_quality.py).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

import jellyfish

from . import names as N
from .demographics import (
    KEY_MAX,
    Demographics,
    Features,
    blocking_keys,
    features,
    is_placeholder_name,
    name_level,
    normalise,
    parse_person_name,
)

__all__ = [
    "AUTO_LINK",
    "AUTO_LINK_UNCORROBORATED",
    "REVIEW",
    "HOUSEHOLD_CAP",
    "KEY_MAX",
    "Comparison",
    "Demographics",
    "FieldEvidence",
    "blocking_keys",
    "compare",
    "corroborated",
    "corroboration",
    "decide",
    "is_placeholder_name",
    "normalise",
    "parse_person_name",
]

AUTO_LINK = 30.0
AUTO_LINK_UNCORROBORATED = 34.0
REVIEW = 16.0
HOUSEHOLD_CAP = 20.0


@dataclass(frozen=True)
class FieldEvidence:
    field: str
    outcome: str
    weight: float  # log2 likelihood-ratio contribution
    detail: str = ""


@dataclass(frozen=True)
class Comparison:
    score: float
    evidence: tuple[FieldEvidence, ...]
    veto: str = ""  # non-empty: never linked automatically (decide() says review or separate)


# --- weights ----------------------------------------------------------------------------------

# (m, u) per field outcome; the weight is log2(m / u). u = 0.0: the u is a frequency the
# comparison supplies (the name's share of the population).
M_U: dict[tuple[str, str], tuple[float, float]] = {
    # m and u given that both records have the field (missing: weight 0). "c": counted on the
    # synthetic population (bench/identity_quality.py --estimate), rounded; "j": judgment
    # where the generator has no such error or the synthetic geography is not the world's.
    ("family", "agree"): (0.89, 0.0),  # c; u: surname frequency
    ("family", "typo"): (0.037, 0.0005),  # c m; j u: real near-miss surnames are commoner
    ("family", "phonetic"): (0.003, 0.002),  # j: the generator makes none
    ("family", "similar"): (0.0004, 0.0005),  # c
    ("family", "hyphenated_part"): (0.045, 0.0),  # c; u: 10 % of the part's frequency
    ("family", "disagree"): (0.02, 0.975),  # c u; j m: surname changes (adoption, custody)
    ("family", "placeholder_surname"): (0.85, 0.0),  # c; u: surname frequency
    ("family", "placeholder_differs"): (0.1, 0.95),  # c u; j m (c: 0.07)
    ("name_order", "transposed"): (0.011, 0.85),  # c: relative to straight agreement
    ("given", "agree"): (0.94, 0.0),  # c; u: given-name frequency within the sex
    ("given", "nickname"): (0.009, 0.0002),  # c
    ("given", "typo"): (0.037, 0.00075),  # c
    ("given", "variant"): (0.0003, 0.0015),  # c
    ("given", "similar"): (0.00003, 0.00045),  # c
    ("given", "middle_name"): (0.0012, 0.001),  # c
    ("given", "initial"): (0.003, 0.0004),  # j: the generator makes none
    ("given", "disagree"): (0.0031, 0.994),  # c
    ("middle", "agree"): (0.63, 0.0),  # c; u: middle-name frequency (c: 0.015 on average)
    ("middle", "initial"): (0.35, 0.0),  # c; u: share of middle names with the initial (c: 0.031)
    ("middle", "typo"): (0.011, 0.0032),  # c
    ("middle", "disagree"): (0.02, 0.95),  # c u; j m (c: 0.001, no such errors generated)
    ("birth_date", "agree"): (0.96, 1 / 6575),  # c m; u: 0-18 years of birth dates
    ("birth_date", "day_month_swap"): (0.006, 0.4 / 6575),  # c; u: day <= 12 for 40 %
    ("birth_date", "one_digit_typo"): (0.025, 0.004),  # c
    ("birth_date", "disagree"): (0.007, 0.995),  # c
    ("sex", "agree"): (0.99, 0.5),  # c
    ("sex", "disagree"): (0.0055, 0.5),  # c
    ("postcode", "agree"): (0.82, 0.01),  # c m; j u (c: 0.009; a catchment of ~100 postcodes)
    ("postcode", "partial"): (0.15, 0.33),  # c
    ("postcode", "disagree"): (0.04, 0.66),  # c u; j m (c: 0.03)
    ("phone", "agree"): (0.47, 1e-5),  # c m; j u (c: 2.5e-5 among 20,000 children)
    ("phone", "disagree"): (0.53, 1.0),  # c
    ("mother_maiden", "agree"): (0.91, 0.0),  # c; u: surname frequency
    ("mother_maiden", "typo"): (0.038, 0.0006),  # c
    ("mother_maiden", "disagree"): (0.05, 0.999),  # c
    ("parent_name", "agree"): (0.5, 2e-5),  # c
    ("parent_name", "partial"): (0.035, 0.00066),  # c
    ("parent_name", "disagree"): (0.146, 0.999),  # c
    ("birth_order", "agree"): (0.99, 0.5),  # j: counts only among multiple births
    ("multiple_birth", "disagree"): (0.02, 0.05),  # j: the generator makes none
}


def _w(field: str, outcome: str) -> float:
    m, u = M_U[(field, outcome)]
    return math.log2(m / u)


def _e(field: str, outcome: str, detail: str = "") -> FieldEvidence:
    """Evidence whose weight comes from the M_U table."""
    return FieldEvidence(field, outcome, _w(field, outcome), detail)


def _w_freq(field: str, outcome: str, frequency: float) -> float:
    return math.log2(M_U[(field, outcome)][0] / frequency)


def _surname_weight(name: str) -> float:
    return _w_freq("family", "agree", N.surname_frequency(name))


# --- field comparisons ------------------------------------------------------------------------


def _compare_family(a: Features, b: Features) -> FieldEvidence:
    if not a.family or not b.family:
        return FieldEvidence("family", "missing", 0.0)
    level = name_level(a.family, b.family, "surname")
    shown = f"{a.d.family} vs {b.d.family}"
    if level == "exact":
        return FieldEvidence("family", "agree", _surname_weight(a.family), a.d.family)
    if level == "typo":
        return _e("family", "typo", f"{shown}: one edit apart")
    shared = [w for w in a.family_words if w in b.family_words]
    if shared and (len(a.family_words) > 1 or len(b.family_words) > 1):
        word = min(shared, key=N.surname_frequency)
        weight = _w_freq("family", "hyphenated_part", 0.1 * N.surname_frequency(word))
        return FieldEvidence("family", "hyphenated_part", weight, f"{shown}: share {word}")
    if level == "phonetic":
        return _e("family", "phonetic", f"{shown}: sound alike")
    if level == "similar":
        return _e("family", "similar", shown)
    return _e("family", "disagree", shown)


def _placeholder_family(a: Features, b: Features) -> FieldEvidence:
    """A placeholder's surname words against the other record's family, mother and parents."""
    pairs = []
    for p, other in ((a, b), (b, a)):
        if not p.placeholder:
            continue
        pool = set(other.family_words) | set(other.mother_words) | other.parent_words
        pool |= set(other.surnames)
        if other.family:
            pool.add(other.family)
        pairs += [(w, o) for w in p.surnames for o in sorted(pool)]
    if not pairs:
        return FieldEvidence("family", "placeholder", 0.0, "placeholder name: no surname")
    hits = [w for w, o in pairs if name_level(w, o) in ("exact", "typo")]
    if hits:
        word = min(hits, key=N.surname_frequency)
        weight = _w_freq("family", "placeholder_surname", N.surname_frequency(word))
        return FieldEvidence("family", "placeholder_surname", weight, f"placeholder has {word}")
    words = "/".join(sorted(set(a.surnames) | set(b.surnames)))
    return _e("family", "placeholder_differs", f"placeholder surname {words} not found elsewhere")


def _given_sex(a: Features, b: Features) -> str:
    return a.sex if a.sex == b.sex and a.sex in ("M", "F") else ""


def _given_level(a: Features, b: Features) -> tuple[str, str]:
    """(outcome, detail) of the given names; placeholders and missing names excluded."""
    x, y = a.given, b.given
    if x == y or (a.given_all and a.given_all == b.given_all):
        return "agree", x
    shown = f"{a.d.given} vs {b.d.given}"
    if N.are_nicknames(x, y):
        return "nickname", f"{shown}: nickname"
    if (len(x) == 1 or len(y) == 1) and x[0] == y[0]:
        return "initial", f"{shown}: initial only"
    level = name_level(x, y, "given")
    if level == "typo":
        return "typo", f"{shown}: one edit apart"
    for p, q in ((a, b), (b, a)):
        if (
            p.middle
            and len(p.middle) > 1
            and (q.given == p.middle or N.are_nicknames(q.given, p.middle))
        ):
            return "middle_name", f"{shown}: goes by middle name {p.middle}"
    if level == "phonetic" or (level == "similar" and _sim(x, y) >= 0.9):
        return "variant", f"{shown}: spelling variant or different name"
    if level == "similar":
        return "similar", f"{shown}: similar"
    return "disagree", shown


def _sim(a: str, b: str) -> float:
    return jellyfish.jaro_winkler_similarity(a, b)


def _given_evidence(a: Features, b: Features, outcome: str, detail: str) -> FieldEvidence:
    if outcome == "agree":
        sex = _given_sex(a, b)
        frequency = max(N.given_frequency(a.given, sex), N.given_frequency(b.given, sex))
        return FieldEvidence("given", "agree", _w_freq("given", "agree", frequency), detail)
    return FieldEvidence("given", outcome, _w("given", outcome), detail)


def _compare_names(a: Features, b: Features) -> tuple[list[FieldEvidence], str]:
    """Family and given evidence (straight or transposed) and the given-name outcome."""
    if a.placeholder or b.placeholder:
        who = a if a.placeholder else b
        shown = " ".join(x for x in (who.d.family, who.d.given) if x)
        given = FieldEvidence("given", "placeholder", 0.0, f"{shown}: newborn/unknown placeholder")
        return [_placeholder_family(a, b), given], "placeholder"
    family = _compare_family(a, b)
    if not a.given or not b.given:
        return [family, FieldEvidence("given", "missing", 0.0)], "missing"
    outcome, detail = _given_level(a, b)
    given = _given_evidence(a, b, outcome, detail)
    if family.outcome in ("disagree", "similar") and outcome in ("disagree", "similar"):
        cross_f = name_level(a.family, b.given_all)
        cross_g = name_level(a.given_all, b.family)
        if cross_f in ("exact", "typo") and cross_g in ("exact", "typo"):
            shown = f"{a.d.family}^{a.d.given} vs {b.d.family}^{b.d.given}"
            # symmetric: the rarer reading of each name counts least
            fw = min(_surname_weight(a.family), _surname_weight(b.family))
            sex = _given_sex(a, b)
            g_freq = max(N.given_frequency(a.given_all, sex), N.given_frequency(b.given_all, sex))
            gw = _w_freq("given", "agree", g_freq)
            if cross_f != "exact" or cross_g != "exact":
                fw, gw = min(fw, _w("family", "typo")), min(gw, _w("given", "typo"))
            return [
                FieldEvidence("family", "transposed", round(fw, 2), f"{shown}: swapped"),
                FieldEvidence("given", "transposed", round(gw, 2), f"{shown}: swapped"),
                _e("name_order", "transposed", "given and family names the other way round"),
            ], "transposed"
    return [family, given], outcome


def _compare_middle(a: Features, b: Features, given_outcome: str) -> FieldEvidence:
    if not a.middle or not b.middle or given_outcome in ("middle_name", "placeholder"):
        return FieldEvidence("middle", "missing", 0.0)
    x, y = a.middle, b.middle
    if x == y and len(x) > 1:
        return FieldEvidence(
            "middle", "agree", _w_freq("middle", "agree", N.middle_frequency(x)), x
        )
    if (len(x) == 1 or len(y) == 1) and x[0] == y[0]:
        weight = _w_freq("middle", "initial", N.middle_initial_frequency(x[0]))
        return FieldEvidence("middle", "initial", weight, f"{x} vs {y}")
    if name_level(x, y) == "typo" or N.are_nicknames(x, y):
        return _e("middle", "typo", f"{x} vs {y}")
    return _e("middle", "disagree", f"{x} vs {y}")


def _compare_birth_date(x: datetime.date | None, y: datetime.date | None) -> FieldEvidence:
    if x is None or y is None:
        return FieldEvidence("birth_date", "missing", 0.0)
    if x == y:
        return _e("birth_date", "agree", x.isoformat())
    shown = f"{x.isoformat()} vs {y.isoformat()}"
    if x.year == y.year and x.month == y.day and x.day == y.month:
        return _e("birth_date", "day_month_swap", f"{shown}: day and month swapped")
    sx, sy = x.strftime("%Y%m%d"), y.strftime("%Y%m%d")
    if jellyfish.damerau_levenshtein_distance(sx, sy) == 1:
        return _e("birth_date", "one_digit_typo", f"{shown}: one digit differs")
    return _e("birth_date", "disagree", shown)


def _compare_sex(a: Features, b: Features) -> FieldEvidence:
    if a.sex not in ("M", "F") or b.sex not in ("M", "F"):
        return FieldEvidence("sex", "missing", 0.0)
    if a.sex == b.sex:
        return _e("sex", "agree", a.sex)
    return _e("sex", "disagree", f"{a.sex} vs {b.sex}")


def _compare_household(a: Features, b: Features) -> list[FieldEvidence]:
    out = []
    pa, pb = a.d.postcode, b.d.postcode
    if pa and pb:
        if pa == pb:
            out.append(_e("postcode", "agree", pa))
        elif pa[:3] == pb[:3] and len(pa) >= 5 and len(pb) >= 5:
            out.append(_e("postcode", "partial", f"{pa} vs {pb}"))
        else:
            out.append(_e("postcode", "disagree", f"{pa} vs {pb}"))
    else:
        out.append(FieldEvidence("postcode", "missing", 0.0))
    ta, tb = a.d.phone, b.d.phone
    if ta and tb:
        if ta == tb or (len(ta) >= 10 and len(tb) >= 10 and ta[-10:] == tb[-10:]):
            out.append(_e("phone", "agree", ta))
        else:
            out.append(_e("phone", "disagree", f"{ta} vs {tb}"))
    else:
        out.append(FieldEvidence("phone", "missing", 0.0))
    if a.mother and b.mother:
        level = name_level(a.mother, b.mother)
        shown = f"{a.d.mother_maiden} vs {b.d.mother_maiden}"
        if level == "exact":
            weight = _w_freq("mother_maiden", "agree", N.surname_frequency(a.mother))
            out.append(FieldEvidence("mother_maiden", "agree", weight, a.d.mother_maiden))
        elif level in ("typo", "phonetic") or set(a.mother_words) & set(b.mother_words):
            out.append(_e("mother_maiden", "typo", shown))
        else:
            out.append(_e("mother_maiden", "disagree", shown))
    else:
        out.append(FieldEvidence("mother_maiden", "missing", 0.0))
    if a.parent_words and b.parent_words:
        shared = a.parent_words & b.parent_words
        child_names = {a.family, b.family, *a.family_words, *b.family_words}
        informative = shared - child_names - {*a.surnames, *b.surnames}
        shown = f"{a.d.parent_name} vs {b.d.parent_name}"
        if len(shared) >= 2 and informative:
            out.append(_e("parent_name", "agree", shown))
        elif informative:
            out.append(_e("parent_name", "partial", f"{shown}: share {min(informative)}"))
        elif shared:
            out.append(FieldEvidence("parent_name", "surname_only", 0.0, f"{shown}: surname only"))
        else:
            out.append(_e("parent_name", "disagree", shown))
    else:
        out.append(FieldEvidence("parent_name", "missing", 0.0))
    return out


def _compare_births(a: Features, b: Features) -> list[FieldEvidence]:
    out = []
    if a.order and b.order:
        if a.order == b.order:
            out.append(_e("birth_order", "agree", str(a.order)))
        else:
            out.append(FieldEvidence("birth_order", "disagree", 0.0, f"{a.order} vs {b.order}"))
    if a.multiple is not None and b.multiple is not None and a.multiple != b.multiple:
        detail = "one record says multiple birth, the other singleton"
        out.append(_e("multiple_birth", "disagree", detail))
    return out


# --- comparison, vetoes, decision -------------------------------------------------------------

_NEAR_BIRTH = ("agree", "day_month_swap", "one_digit_typo")
_HOUSEHOLD_FIELDS = ("family", "postcode", "phone", "mother_maiden", "parent_name")
_CONTEXT_FIELDS = ("postcode", "phone", "mother_maiden", "parent_name")
TWINS = "twins:"  # veto prefix: keep apart; any other veto: review at most


def _pair(x: object, y: object) -> str:
    """ "X vs Y" in a fixed order, so a veto reads the same whichever record comes first."""
    first, second = sorted((str(x), str(y)))
    return f"{first} vs {second}"


def _vetoes(
    a: Features, b: Features, by_field: dict[str, FieldEvidence], given_outcome: str
) -> list[str]:
    vetoes = []
    near_birth = by_field["birth_date"].outcome in _NEAR_BIRTH
    # one family: the surnames agree in some way, or anything of the household does
    surname = by_field["family"].outcome not in ("disagree", "missing", "placeholder_differs")
    related = surname or any(by_field[f].outcome == "agree" for f in _CONTEXT_FIELDS)
    if near_birth:
        if a.order and b.order and a.order != b.order:
            vetoes.append(f"{TWINS} same birth, birth order {_pair(a.order, b.order)}")
        elif related and given_outcome == "disagree":
            vetoes.append(
                f"{TWINS} same birth and family, given names {_pair(a.d.given, b.d.given)}"
            )
        elif related and given_outcome in ("variant", "similar", "initial", "middle_name"):
            vetoes.append(
                f"possible multiple birth: same birth and family, given names only similar "
                f"({_pair(a.d.given, b.d.given)})"
            )
        elif (
            given_outcome in ("placeholder", "missing")
            and related
            and (a.multiple or b.multiple)
            and by_field["sex"].outcome == "disagree"
        ):
            vetoes.append(f"{TWINS} multiple birth, placeholder of the other sex")
        elif given_outcome in ("placeholder", "missing"):
            singleton = (a.multiple is False or b.multiple is False) and not (
                a.multiple or b.multiple
            )
            same_order = a.order is not None and a.order == b.order
            if not singleton and not same_order:
                vetoes.append(
                    "possible multiple birth: placeholder or missing given name and no record "
                    "says singleton or gives the same birth order"
                )
        elif (
            (a.multiple or b.multiple)
            and given_outcome not in ("agree", "transposed")
            and not (a.order and a.order == b.order)
        ):
            vetoes.append(
                f"possible multiple birth: flagged multiple, given names "
                f"{_pair(a.d.given, b.d.given)} not identical"
            )
    if by_field["sex"].outcome == "disagree":
        vetoes.append(f"sex conflict: {_pair(a.sex, b.sex)}")
    return vetoes


def compare(a: Demographics, b: Demographics) -> Comparison:
    """Field-by-field evidence, score (log2 likelihood ratio) and veto for two records.
    Symmetric in score, outcomes and veto; normalises its inputs."""
    fa, fb = features(a), features(b)
    names, given_outcome = _compare_names(fa, fb)
    evidence = [
        *names,
        _compare_middle(fa, fb, given_outcome),
        _compare_birth_date(fa.d.birth_date, fb.d.birth_date),
        _compare_sex(fa, fb),
        *_compare_household(fa, fb),
        *_compare_births(fa, fb),
    ]
    evidence = [FieldEvidence(e.field, e.outcome, round(e.weight, 2), e.detail) for e in evidence]
    household = sum(e.weight for e in evidence if e.field in _HOUSEHOLD_FIELDS)
    if household > HOUSEHOLD_CAP:
        evidence.append(
            FieldEvidence(
                "household",
                "cap",
                round(HOUSEHOLD_CAP - household, 2),
                f"family, address, phone and parents point to one household: counted up to "
                f"{HOUSEHOLD_CAP:g} bits (siblings share them too)",
            )
        )
    by_field = {e.field: e for e in evidence}
    vetoes = _vetoes(fa, fb, by_field, given_outcome)
    vetoes.sort(key=lambda v: not v.startswith(TWINS))
    score = round(sum(e.weight for e in evidence), 2)
    return Comparison(score=score, evidence=tuple(evidence), veto="; ".join(vetoes))


def corroboration(c: Comparison) -> int:
    """How many of postcode, phone, mother's maiden name and parent name agree."""
    return sum(e.field in _CONTEXT_FIELDS and e.outcome == "agree" for e in c.evidence)


def corroborated(c: Comparison) -> bool:
    """Whether anything beyond names, birth date and sex agrees."""
    return corroboration(c) > 0


def decide(c: Comparison) -> str:
    """ "link" | "review" | "separate".

    A twins veto keeps the pair apart whatever the score; any other veto caps the outcome at
    review. A link needs AUTO_LINK and one agreeing postcode, phone, mother's maiden name or
    parent name; without any, AUTO_LINK_UNCORROBORATED (a child with a common name born the
    same day in another town agrees on all a name and birth date can say). A placeholder or
    missing given name needs two of them (the household is then all that tells the child)."""
    if c.veto.startswith(TWINS):
        return "separate"
    agreeing = corroboration(c)
    weak_name = any(
        e.field == "given" and e.outcome in ("placeholder", "missing") for e in c.evidence
    )
    if weak_name:
        link_at = AUTO_LINK if agreeing >= 2 else math.inf
    else:
        link_at = AUTO_LINK if agreeing else AUTO_LINK_UNCORROBORATED
    if c.score >= link_at and not c.veto:
        return "link"
    if c.score >= REVIEW:
        return "review"
    return "separate"
