"""The master patient index matcher for children: pure functions, no database, no Django.

    normalise -> blocking_keys (candidate search) -> compare (evidence, score, veto) -> decide

Model. A Fellegi-Sunter score: every field comparison has an outcome ("agree", "typo",
"nickname", "day_month_swap", ...) whose weight is log2(m / u), m = P(outcome | same child),
u = P(outcome | two different children); the score is the sum, a log2 likelihood ratio.
Three corrections to the independence the model assumes, each because of a pediatric reality:

* Household. Family name, postcode, phone, mother's maiden name and parent name say "same
  household" far more than "same child": siblings and twins share them all. Their positive sum
  is capped at HOUSEHOLD_CAP bits (a household among ~500,000 in a catchment of 1,000,000
  children is ~19 bits), so what tells children of one household apart (given name, birth
  date, sex) must still agree for a link.
* Newborn placeholders ("BABY GIRL", "BB", "TWIN A", "INFANT OF <mother>") carry no given-name
  evidence (weight 0). Their surname is often the mother's, so it is compared with the other
  record's family, mother's maiden and parent names. A link then rests on birth date, sex,
  mother and household, and only when one record says the birth was a singleton, or both give
  the same birth order: otherwise the pair goes to review (see vetoes).
* Multiple births. Twins and triplets share birth date, surname, parents, address and phone:
  the score alone would link them. compare() sets a veto instead (decide() never links a
  vetoed pair):
    - "twins: ..." (kept apart): same or near birth date and household, and either different
      given names (neither nickname, typo, middle-name use nor placeholder) or different
      stated birth orders;
    - "possible multiple birth: ..." (review at most): a placeholder or missing given name
      without singleton evidence; given names that are only similar (spelling variants such
      as AVA/EVA, both real names); or a record flagged as a multiple birth whose given names
      only match as nickname, typo or initial;
    - "sex conflict: ..." (review at most): one record says M, the other F.

Where the numbers come from.
* u of name agreement: the name's share of the population (identity/names.py: US Census 2010
  surname ranks and SSA given-name ranks with a fitted power law; given names within the
  agreed sex). Hyphen-part agreement: 10 % of that share (P(compound surname) x share).
* u of birth-date agreement: 1 / 6,575 (birth dates spread over 0-18 years); a day/month swap
  is as likely by chance as an agreement; a one-digit typo or swap of adjacent digits has ~24
  valid neighbours of a date (u 0.0037).
* u of the other outcomes and every m: counted on labelled pairs of the synthetic population
  (identity/synthetic.py; `bench/identity_quality.py --estimate --seed 11`, 20,000 children:
  m from all pairs of records of one child, u from 400,000 random pairs of different
  children), then rounded. The counts print next to the table, so a change to the generator
  or the comparisons shows up. The generator's error rates are plausible guesses, not
  measurements from a real index: re-estimate m from review-queue decisions once there are
  some (EM on real pairs would also do).
* Thresholds. With ~1,000,000 records a given record's true match is a priori one in a
  million (-20 bits). AUTO_LINK = 30 asks for posterior odds of ~1,000:1 (+10 bits) before
  the machine links; REVIEW = 16 is odds of ~1:16, below which a steward's time is wasted.
  Both were then checked on the benchmark (tuned on seeds 11 and 12, verified on others):
  precision of automatic links >= 0.999 with margin, recall with review >= 0.97.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import unicodedata
from dataclasses import dataclass, replace

import jellyfish

from . import names as N

__all__ = [
    "AUTO_LINK",
    "AUTO_LINK_UNCORROBORATED",
    "REVIEW",
    "HOUSEHOLD_CAP",
    "Comparison",
    "Demographics",
    "FieldEvidence",
    "blocking_keys",
    "compare",
    "corroborated",
    "decide",
    "is_placeholder_name",
    "normalise",
    "parse_person_name",
]

AUTO_LINK = 30.0
AUTO_LINK_UNCORROBORATED = 36.0
REVIEW = 16.0
HOUSEHOLD_CAP = 20.0
KEY_MAX = 80  # identity.models.BlockingKey.key


@dataclass(frozen=True)
class Demographics:
    issuer: str  # "org-slug|IssuerOfPatientID": the scope of the MRN
    patient_id: str
    family: str = ""  # already split; parse_person_name() splits a DICOM PN
    given: str = ""
    middle: str = ""
    birth_date: datetime.date | None = None
    sex: str = ""  # "M" | "F" | "O" | ""
    mother_maiden: str = ""  # mother's maiden (birth) family name
    parent_name: str = ""  # parent or guardian full name, free text
    postcode: str = ""
    phone: str = ""
    multiple_birth: bool | None = None
    birth_order: int | None = None


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

# (m, u) per field outcome; the weight is log2(m / u). Names' "agree" u is the name's frequency
# (see the module docstring), so it is not here.
M_U: dict[tuple[str, str], tuple[float, float]] = {
    ("family", "agree"): (0.90, 0.0),  # u: surname frequency
    ("family", "typo"): (0.025, 0.0005),
    ("family", "phonetic"): (0.006, 0.002),
    ("family", "similar"): (0.004, 0.01),
    ("family", "hyphenated_part"): (0.03, 0.0),  # u: 10 % of the shared part's frequency
    ("family", "disagree"): (0.035, 0.985),
    ("family", "placeholder_surname"): (0.7, 0.0),  # u: surname frequency
    ("family", "placeholder_differs"): (0.25, 0.99),
    ("name_order", "transposed"): (0.008, 0.9),  # relative to the straight agreement
    ("given", "agree"): (0.88, 0.0),  # u: given-name frequency within the sex
    ("given", "nickname"): (0.04, 0.0015),
    ("given", "typo"): (0.025, 0.0006),
    ("given", "variant"): (0.008, 0.004),
    ("given", "similar"): (0.006, 0.02),
    ("given", "middle_name"): (0.01, 0.0008),
    ("given", "initial"): (0.003, 0.0004),
    ("given", "disagree"): (0.006, 0.97),
    ("middle", "agree"): (0.55, 0.02),
    ("middle", "initial"): (0.25, 0.05),
    ("middle", "typo"): (0.02, 0.001),
    ("middle", "disagree"): (0.04, 0.9),
    ("birth_date", "agree"): (0.97, 1 / 6575),
    ("birth_date", "day_month_swap"): (0.006, 1 / 6575),
    ("birth_date", "one_digit_typo"): (0.012, 0.0037),
    ("birth_date", "disagree"): (0.004, 0.995),
    ("sex", "agree"): (0.985, 0.5),
    ("sex", "disagree"): (0.006, 0.5),
    ("postcode", "agree"): (0.8, 0.01),
    ("postcode", "partial"): (0.05, 0.1),
    ("postcode", "disagree"): (0.15, 0.89),
    ("phone", "agree"): (0.6, 1e-5),
    ("phone", "disagree"): (0.4, 1.0),
    ("mother_maiden", "agree"): (0.9, 0.0),  # u: surname frequency
    ("mother_maiden", "typo"): (0.05, 0.001),
    ("mother_maiden", "disagree"): (0.05, 0.99),
    ("parent_name", "agree"): (0.55, 1e-5),
    ("parent_name", "partial"): (0.3, 0.02),
    ("parent_name", "disagree"): (0.15, 0.98),
    ("birth_order", "agree"): (0.99, 0.5),
    ("multiple_birth", "disagree"): (0.02, 0.05),
}


def _w(field: str, outcome: str) -> float:
    m, u = M_U[(field, outcome)]
    return math.log2(m / u)


def _e(field: str, outcome: str, detail: str = "") -> FieldEvidence:
    """Evidence whose weight comes from the M_U table."""
    return FieldEvidence(field, outcome, _w(field, outcome), detail)


def _w_freq(field: str, outcome: str, frequency: float) -> float:
    return math.log2(M_U[(field, outcome)][0] / frequency)


# --- parsing and normalisation ----------------------------------------------------------------

_TRANSLIT = str.maketrans({"Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe",
                           "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "TH", "þ": "th",
                           "ß": "SS", "ı": "i"})  # fmt: skip
_APOSTROPHES = re.compile(r"['\u2019\u2018`\u00b4]")
_NOT_NAME = re.compile(r"[^A-Z0-9\- ]+")
_HYPHEN = re.compile(r"\s*-[\s-]*")
_SPACES = re.compile(r"\s+")


def _ascii_upper(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.translate(_TRANSLIT))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.upper()


def _clean_name(text: str) -> str:
    """Upper case ASCII letters and digits, one space between words, hyphens kept (compound
    surnames), apostrophes dropped (O'BRIEN -> OBRIEN), generational suffixes dropped."""
    text = _APOSTROPHES.sub("", _ascii_upper(text or ""))
    text = _NOT_NAME.sub(" ", text)
    text = _HYPHEN.sub("-", text)
    text = _SPACES.sub(" ", text).strip(" -")
    words = text.split(" ")
    while len(words) > 1 and words[-1] in N.SUFFIXES:
        words.pop()
    return " ".join(words).strip(" -")


def parse_person_name(pn: str) -> tuple[str, str, str]:
    """A DICOM PN or HL7 XPN "FAMILY^GIVEN^MIDDLE^..." -> (family, given, middle), upper case,
    trimmed, inner spaces collapsed. Of the '=' component groups the first non-empty one is
    used (alphabetic before ideographic). "FAMILY, GIVEN MIDDLE" (no '^') is split at the comma;
    a name with neither is all family name, as PS3.5 6.2.1.1 reads it."""
    groups = (pn or "").split("=")
    group = next((g for g in groups if g.strip("^ ")), "")
    if "^" not in group and "," in group:
        family, _, rest = group.partition(",")
        words = rest.split()
        parts = [family, words[0] if words else "", " ".join(words[1:])]
    else:
        parts = group.split("^")
    parts = [_SPACES.sub(" ", p).strip().upper() for p in parts] + ["", "", ""]
    return parts[0], parts[1], parts[2]


def _phone(text: str) -> str:
    text = re.split(r"(?i)x|ext", text or "", maxsplit=1)[0]
    digits = re.sub(r"\D", "", text)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) < 7 or len(set(digits)) == 1 or digits in ("1234567890", "0123456789"):
        return ""
    return digits


def _postcode(text: str) -> str:
    code = re.sub(r"[^A-Z0-9]", "", _ascii_upper(text or ""))
    if code.isdigit() and len(code) == 9:
        code = code[:5]  # ZIP+4 -> ZIP
    if not code or len(set(code)) == 1 and code[0] == "0":
        return ""
    return code


_SEX = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O"}


def normalise(d: Demographics) -> Demographics:
    """Upper-case ASCII names (diacritics and punctuation gone, hyphens kept), phone digits
    only (NANP leading 1 dropped; placeholder numbers such as 0000000 dropped), postcode
    without spaces (ZIP+4 -> ZIP), sex M/F/O/"". Idempotent."""
    order = d.birth_order if d.birth_order and d.birth_order > 0 else None
    return replace(
        d,
        issuer=(d.issuer or "").strip(),
        patient_id=(d.patient_id or "").strip(),
        family=_clean_name(d.family),
        given=_clean_name(d.given),
        middle=_clean_name(d.middle),
        sex=_SEX.get(_ascii_upper(d.sex or "").strip(), ""),
        mother_maiden=_clean_name(d.mother_maiden),
        parent_name=_clean_name(d.parent_name),
        postcode=_postcode(d.postcode),
        phone=_phone(d.phone),
        birth_order=order,
    )


# --- placeholders -----------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[ -]", text) if w]


@dataclass(frozen=True)
class _Placeholder:
    is_placeholder: bool
    given: str  # the real given name left after placeholder words, if any ("BABY GIRL EMMA")
    surnames: tuple[str, ...]  # words that may be the family or mother's name
    sex: str  # implied by GIRL/BOY words
    order: int | None  # birth order from "TWIN B", "BABY GIRL A", "BB 2"
    multiple: bool  # TWIN/TRIPLET words or an order marker


def _placeholder(family: str, given: str, middle: str) -> _Placeholder:
    fw, gw, mw = _words(family), _words(given), _words(middle)
    words = fw + gw + mw
    doe = family == "DOE" and (not gw or gw[0] in N.DOE_GIVEN)
    if not doe and not any(w in N.PLACEHOLDER_WORDS for w in words):
        return _Placeholder(False, given, (), "", None, False)
    sex = ""
    if any(w in N.FEMALE_WORDS for w in words):
        sex = "F"
    elif any(w in N.MALE_WORDS for w in words):
        sex = "M"
    order = next((N.ORDER_MARKERS[w] for w in words if w in N.ORDER_MARKERS), None)
    multiple = order is not None or any(w.startswith(("TWIN", "TRIPLET")) for w in words)
    noise = N.PLACEHOLDER_WORDS | N.ORDER_MARKERS.keys() | N.PLACEHOLDER_ALPHA

    def real(ws: list[str]) -> list[str]:
        out = []
        for w in ws:
            if w == "OF":
                break  # "INFANT OF MARY SMITH": what follows names the mother
            if w not in noise:
                out.append(w)
        return out

    def after_of(ws: list[str]) -> list[str]:
        return ws[ws.index("OF") + 1 :] if "OF" in ws else []

    family_is_placeholder = bool(fw) and all(w in noise for w in fw)
    given_real = real(gw)
    if given_real and not family_is_placeholder and not doe and "OF" not in gw:
        # "SMITH^BABY GIRL EMMA": named after all; the placeholder words are noise
        return _Placeholder(False, " ".join(given_real), (), sex, order, multiple)
    surnames = real(fw) + (given_real if family_is_placeholder else []) + after_of(fw)
    surnames += after_of(gw)
    surnames = [w for w in surnames if len(w) >= 2 and w not in N.PARTICLES and w != "DOE"]
    return _Placeholder(True, "", tuple(dict.fromkeys(surnames)), sex, order, multiple)


def is_placeholder_name(d: Demographics) -> bool:
    """A newborn or unknown-patient placeholder name: "BABY GIRL SMITH", "BB", "BG", "NEWBORN",
    "TWIN A", "INFANT OF <mother>", "BABYGIRL^SMITH", "UNKNOWN", "NN", "DOE^JOHN", ..."""
    n = normalise(d)
    return _placeholder(n.family, n.given, n.middle).is_placeholder


# --- features ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _F:
    d: Demographics
    placeholder: bool
    family: str  # compact: no spaces or hyphens
    family_words: tuple[str, ...]  # distinctive words of the family name
    given: str  # first given word ("" for placeholders)
    given_all: str  # compact whole given name
    middle: str  # first middle word
    surnames: tuple[str, ...]  # placeholder: words that may be the family or mother's name
    sex: str
    order: int | None
    multiple: bool | None
    mother: str
    mother_words: tuple[str, ...]
    parent_words: frozenset[str]


def _compact(text: str) -> str:
    return text.replace(" ", "").replace("-", "")


def _distinct_words(text: str) -> tuple[str, ...]:
    return tuple(w for w in _words(text) if len(w) >= 2 and w not in N.PARTICLES)


@functools.lru_cache(maxsize=200_000)
def _features(d: Demographics) -> _F:
    d = normalise(d)
    ph = _placeholder(d.family, d.given, d.middle)
    given = "" if ph.is_placeholder else (ph.given or d.given)
    gw = _words(given)
    middle_words = [] if ph.is_placeholder else _words(d.middle)
    multiple = d.multiple_birth
    if ph.multiple or (d.birth_order or 0) > 1:
        multiple = True if multiple is None else multiple
    return _F(
        d=d,
        placeholder=ph.is_placeholder,
        family="" if ph.is_placeholder else _compact(d.family),
        family_words=() if ph.is_placeholder else _distinct_words(d.family),
        given=gw[0] if gw else "",
        given_all=_compact(given),
        middle=middle_words[0] if middle_words else "",
        surnames=ph.surnames,
        sex=d.sex or ph.sex,
        order=d.birth_order or ph.order,
        multiple=multiple,
        mother=_compact(d.mother_maiden),
        mother_words=_distinct_words(d.mother_maiden),
        parent_words=frozenset(_distinct_words(d.parent_name)),
    )


@functools.lru_cache(maxsize=100_000)
def _code(word: str) -> str:
    """Phonetic code of one word (Metaphone)."""
    return jellyfish.metaphone(word) or word


# --- string levels ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=500_000)
def _level(a: str, b: str, known: str = "") -> str:
    """exact | typo | phonetic | similar | disagree for two words or compact names.

    known="surname"/"given": when both are distinct real names of that kind (JOHNSON and
    JOHNSTON, AVA and EVA), one edit apart is a different name, not a typo: at most phonetic.
    """
    if a == b:
        return "exact"
    if not a or not b:
        return "disagree"
    n = min(len(a), len(b))
    dl = jellyfish.damerau_levenshtein_distance(a, b)
    typo = (dl == 1 and n >= 3) or (dl == 2 and n >= 8)
    same_sound = _code(a) == _code(b)
    if typo and known:
        is_known = N.is_known_surname if known == "surname" else N.is_known_given
        typo = not (is_known(a) and is_known(b))
    if typo:
        return "typo"
    if same_sound:
        return "phonetic"
    if jellyfish.jaro_winkler_similarity(a, b) >= 0.88:
        return "similar"
    return "disagree"


def _surname_weight(name: str) -> float:
    return _w_freq("family", "agree", N.surname_frequency(name))


# --- field comparisons ------------------------------------------------------------------------


def _compare_family(a: _F, b: _F) -> FieldEvidence:
    if not a.family or not b.family:
        return FieldEvidence("family", "missing", 0.0)
    level = _level(a.family, b.family, "surname")
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


def _placeholder_family(a: _F, b: _F) -> FieldEvidence:
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
    hits = [w for w, o in pairs if _level(w, o) in ("exact", "typo")]
    if hits:
        word = min(hits, key=N.surname_frequency)
        weight = _w_freq("family", "placeholder_surname", N.surname_frequency(word))
        return FieldEvidence("family", "placeholder_surname", weight, f"placeholder has {word}")
    words = "/".join(sorted(set(a.surnames) | set(b.surnames)))
    return _e("family", "placeholder_differs", f"placeholder surname {words} not found elsewhere")


def _given_sex(a: _F, b: _F) -> str:
    return a.sex if a.sex == b.sex and a.sex in ("M", "F") else ""


def _given_level(a: _F, b: _F) -> tuple[str, str]:
    """(outcome, detail) of the given names; placeholders and missing names excluded."""
    x, y = a.given, b.given
    if x == y or (a.given_all and a.given_all == b.given_all):
        return "agree", x
    shown = f"{a.d.given} vs {b.d.given}"
    if N.are_nicknames(x, y):
        return "nickname", f"{shown}: nickname"
    if (len(x) == 1 or len(y) == 1) and x[0] == y[0]:
        return "initial", f"{shown}: initial only"
    level = _level(x, y, "given")
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


def _given_evidence(a: _F, b: _F, outcome: str, detail: str) -> FieldEvidence:
    if outcome == "agree":
        sex = _given_sex(a, b)
        frequency = max(N.given_frequency(a.given, sex), N.given_frequency(b.given, sex))
        return FieldEvidence("given", "agree", _w_freq("given", "agree", frequency), detail)
    return FieldEvidence("given", outcome, _w("given", outcome), detail)


def _compare_names(a: _F, b: _F) -> tuple[list[FieldEvidence], str]:
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
        cross_f = _level(a.family, b.given_all)
        cross_g = _level(a.given_all, b.family)
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
                _e("name_order", "transposed", "given and family names entered the other way round",
                ),
            ], "transposed"  # fmt: skip
    return [family, given], outcome


def _compare_middle(a: _F, b: _F, given_outcome: str) -> FieldEvidence:
    if not a.middle or not b.middle or given_outcome in ("middle_name", "placeholder"):
        return FieldEvidence("middle", "missing", 0.0)
    x, y = a.middle, b.middle
    if x == y:
        return _e("middle", "agree", x)
    if (len(x) == 1 or len(y) == 1) and x[0] == y[0]:
        return _e("middle", "initial", f"{x} vs {y}")
    if _level(x, y) == "typo" or N.are_nicknames(x, y):
        return _e("middle", "typo", f"{x} vs {y}")
    return _e("middle", "disagree", f"{x} vs {y}")


def _compare_birth_date(x: datetime.date | None, y: datetime.date | None) -> FieldEvidence:
    if x is None or y is None:
        return FieldEvidence("birth_date", "missing", 0.0)
    if x == y:
        return _e("birth_date", "agree", x.isoformat())
    shown = f"{x.isoformat()} vs {y.isoformat()}"
    if x.year == y.year and x.month == y.day and x.day == y.month:
        return _e("birth_date", "day_month_swap", f"{shown}: day and month swapped",
        )  # fmt: skip
    sx, sy = x.strftime("%Y%m%d"), y.strftime("%Y%m%d")
    if jellyfish.damerau_levenshtein_distance(sx, sy) == 1:
        return _e("birth_date", "one_digit_typo", f"{shown}: one digit differs",
        )  # fmt: skip
    return _e("birth_date", "disagree", shown)


def _compare_sex(a: _F, b: _F) -> FieldEvidence:
    if a.sex not in ("M", "F") or b.sex not in ("M", "F"):
        return FieldEvidence("sex", "missing", 0.0)
    if a.sex == b.sex:
        return _e("sex", "agree", a.sex)
    return _e("sex", "disagree", f"{a.sex} vs {b.sex}")


def _compare_household(a: _F, b: _F) -> list[FieldEvidence]:
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
        level = _level(a.mother, b.mother)
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


def _compare_births(a: _F, b: _F) -> list[FieldEvidence]:
    out = []
    if a.order and b.order:
        if a.order == b.order:
            out.append(_e("birth_order", "agree", str(a.order)))
        else:
            out.append(FieldEvidence("birth_order", "disagree", 0.0, f"{a.order} vs {b.order}"))
    if a.multiple is not None and b.multiple is not None and a.multiple != b.multiple:
        out.append(
            _e(
                "multiple_birth",
                "disagree",
                "one record says multiple birth, the other singleton",
            )  # fmt: skip
        )
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


def _vetoes(a: _F, b: _F, by_field: dict[str, FieldEvidence], given_outcome: str) -> list[str]:
    vetoes = []
    near_birth = by_field["birth_date"].outcome in _NEAR_BIRTH
    related = by_field["family"].outcome not in (
        "disagree",
        "missing",
        "placeholder_differs",
    ) or any(
        by_field[f].outcome == "agree"
        for f in ("postcode", "phone", "mother_maiden", "parent_name")
    )
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
    fa, fb = _features(a), _features(b)
    names, given_outcome = _compare_names(fa, fb)
    evidence = [
        *names,
        _compare_middle(fa, fb, given_outcome),
        _compare_birth_date(fa.d.birth_date, fb.d.birth_date),
        _compare_sex(fa, fb),
        *_compare_household(fa, fb),
        *_compare_births(fa, fb),
    ]
    evidence = [replace(e, weight=round(e.weight, 2)) for e in evidence]
    household = sum(e.weight for e in evidence if e.field in _HOUSEHOLD_FIELDS)
    if household > HOUSEHOLD_CAP:
        evidence.append(
            FieldEvidence(
                "household",
                "cap",
                round(HOUSEHOLD_CAP - household, 2),
                f"family, address, phone and parents point to one household: counted up to "
                f"{HOUSEHOLD_CAP:g} bits (siblings share them too)",
            )  # fmt: skip
        )
    by_field = {e.field: e for e in evidence}
    vetoes = _vetoes(fa, fb, by_field, given_outcome)
    vetoes.sort(key=lambda v: not v.startswith(TWINS))
    score = round(sum(e.weight for e in evidence), 2)
    return Comparison(score=score, evidence=tuple(evidence), veto="; ".join(vetoes))


def corroborated(c: Comparison) -> bool:
    """Whether anything beyond names, birth date and sex agrees: postcode, phone, mother's
    maiden name or parent name."""
    return any(e.field in _CONTEXT_FIELDS and e.outcome == "agree" for e in c.evidence)


def decide(c: Comparison) -> str:
    """ "link" | "review" | "separate". A twins veto keeps the pair apart whatever the score;
    any other veto caps the outcome at review. Without corroboration (see corroborated()) a
    link needs AUTO_LINK_UNCORROBORATED: a child with a common name born the same day in
    another town agrees on everything a name and birth date can say."""
    if c.veto.startswith(TWINS):
        return "separate"
    link_at = AUTO_LINK if corroborated(c) else AUTO_LINK_UNCORROBORATED
    if c.score >= link_at and not c.veto:
        return "link"
    if c.score >= REVIEW:
        return "review"
    return "separate"


# --- blocking ---------------------------------------------------------------------------------


def _given_codes(f: _F) -> set[str]:
    if not f.given or len(f.given) < 2:
        return set()
    return {_code(f.given)} | {_code(r) for r in N.nickname_roots(f.given)}


def blocking_keys(d: Demographics) -> set[str]:
    """Short keys; two records of one child share at least one (the benchmark measures how
    often), and in 1,000,000 children a key is shared by a handful of records:

    n:<dob>:<word>      birth date (day and month in either order) + phonetic code of any
                        name word: family words, given name and its nickname roots, mother's
                        maiden name, placeholder surnames (transposed, hyphenated, changed
                        surname, nickname, placeholder named by the mother's surname)
    y:<w1>:<w2>:<year>  phonetic family + given (order-free) + birth year (day/month typos)
    a:<w1>:<w2>:<mmdd>  the same + month/day in either order (year typos)
    p:<postcode>:<dob>  postcode + exact birth date (names all wrong or placeholders)
    f:<postcode>:<word>:<year>  postcode + phonetic surname-like word + birth year
                        (placeholders and renamed children with a birth-date typo)
    q:<postcode>:<w1>:<w2>  postcode + phonetic family + given (birth date missing or wrong)
    t:<phone>           phone (a household: siblings and the child, renamed or not)
    """
    f = _features(d)
    dob = f.d.birth_date
    postcode = f.d.postcode
    keys: set[str] = set()
    surname_words = set(f.family_words) | set(f.surnames)
    if f.family and len(f.family) >= 2:
        surname_words.add(f.family)
    surname_codes = {_code(w) for w in surname_words}
    codes = surname_codes | {_code(w) for w in (*f.mother_words, *f.parent_words)}
    given_codes = _given_codes(f)
    family_codes = {_code(w) for w in f.family_words} | ({_code(f.family)} if f.family else set())
    pairs = {":".join(sorted((fc, gc))) for fc in family_codes for gc in given_codes}
    if dob:
        lo, hi = sorted((dob.month, dob.day))
        day = f"{dob.year:04d}{lo:02d}{hi:02d}"
        keys |= {f"n:{day}:{c}" for c in codes | given_codes}
        keys |= {f"y:{pair}:{dob.year}" for pair in pairs}
        keys |= {f"a:{pair}:{lo:02d}{hi:02d}" for pair in pairs}
        if postcode:
            keys.add(f"p:{postcode}:{dob.isoformat()}")
            keys |= {f"f:{postcode}:{c}:{dob.year}" for c in surname_codes}
    if postcode:
        keys |= {f"q:{postcode}:{pair}" for pair in pairs}
    if f.d.phone:
        keys.add(f"t:{f.d.phone}")
    return {k[:KEY_MAX] for k in keys}
