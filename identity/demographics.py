"""Patient demographics as the matcher reads them: the record type, DICOM/HL7 name parsing,
normalisation, newborn placeholder names, the derived features a comparison uses and the
blocking keys of the candidate search. Pure functions, no database, no Django; the matcher's
public API (identity.matching) re-exports what callers need."""

from __future__ import annotations

import datetime
import functools
import re
import unicodedata
from dataclasses import dataclass, replace

import jellyfish

from . import names as N

KEY_MAX = 80  # identity.models.BlockingKey.key


@dataclass(frozen=True)
class Demographics:
    """One patient record's demographics as the matcher compares them (raw or normalised)."""

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
    a name with neither is all family name, as DICOM reads a PN without component separators."""
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
    if not code or set(code) == {"0"}:
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


_WORD_SEPARATOR = re.compile(r"[ -]")


def split_words(text: str) -> list[str]:
    """Words of a normalised name: split at spaces and hyphens."""
    return [w for w in _WORD_SEPARATOR.split(text) if w]


@dataclass(frozen=True)
class _Placeholder:
    is_placeholder: bool
    given: str  # the real given name left after placeholder words, if any ("BABY GIRL EMMA")
    surnames: tuple[str, ...]  # words that may be the family or mother's name
    sex: str  # implied by GIRL/BOY words
    order: int | None  # birth order from "TWIN B", "BABY GIRL A", "BB 2"
    multiple: bool  # TWIN/TRIPLET words or an order marker


def _placeholder(family: str, given: str, middle: str) -> _Placeholder:
    fw, gw, mw = split_words(family), split_words(given), split_words(middle)
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
class Features:
    """What compare() and blocking_keys() read of a record, derived once (features())."""

    d: Demographics  # normalised
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


def compact(text: str) -> str:
    """A normalised name without spaces and hyphens (MC DONALD = MCDONALD, SMITH-JONES)."""
    return text.replace(" ", "").replace("-", "")


def _distinct_words(text: str) -> tuple[str, ...]:
    return tuple(w for w in split_words(text) if len(w) >= 2 and w not in N.PARTICLES)


@functools.lru_cache(maxsize=200_000)
def features(d: Demographics) -> Features:
    d = normalise(d)
    ph = _placeholder(d.family, d.given, d.middle)
    given = "" if ph.is_placeholder else (ph.given or d.given)
    gw = split_words(given)
    middle_words = [] if ph.is_placeholder else split_words(d.middle)
    multiple = d.multiple_birth
    if ph.multiple or (d.birth_order or 0) > 1:
        multiple = True if multiple is None else multiple
    return Features(
        d=d,
        placeholder=ph.is_placeholder,
        family="" if ph.is_placeholder else compact(d.family),
        family_words=() if ph.is_placeholder else _distinct_words(d.family),
        given=gw[0] if gw else "",
        given_all=compact(given),
        middle=middle_words[0] if middle_words else "",
        surnames=ph.surnames,
        sex=d.sex or ph.sex,
        order=d.birth_order or ph.order,
        multiple=multiple,
        mother=compact(d.mother_maiden),
        mother_words=_distinct_words(d.mother_maiden),
        parent_words=frozenset(_distinct_words(d.parent_name)),
    )


@functools.lru_cache(maxsize=100_000)
def phonetic(word: str) -> str:
    """Phonetic code of one word (Metaphone)."""
    return jellyfish.metaphone(word) or word


# --- string levels ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=500_000)
def name_level(a: str, b: str, known: str = "") -> str:
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
    same_sound = phonetic(a) == phonetic(b)
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


# --- blocking ---------------------------------------------------------------------------------


def _given_codes(f: Features) -> set[str]:
    if not f.given or len(f.given) < 2:
        return set()
    return {phonetic(f.given)} | {phonetic(r) for r in N.nickname_roots(f.given)}


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
    f = features(d)
    dob = f.d.birth_date
    postcode = f.d.postcode
    keys: set[str] = set()
    surname_words = set(f.family_words) | set(f.surnames)
    if f.family and len(f.family) >= 2:
        surname_words.add(f.family)
    surname_codes = {phonetic(w) for w in surname_words}
    codes = surname_codes | {phonetic(w) for w in (*f.mother_words, *f.parent_words)}
    given_codes = _given_codes(f)
    family_codes = {phonetic(w) for w in f.family_words} | (
        {phonetic(f.family)} if f.family else set()
    )
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
