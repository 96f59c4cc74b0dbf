"""A seeded, reproducible synthetic pediatric population across hospitals, with the record
errors a master patient index meets. Pure Python, no Django; no data files.

    generate(n_children, seed, hospitals=4) -> list[SyntheticRecord]

Each SyntheticRecord carries the record (identity.matching.Demographics, raw as a sending
system gives it: mixed case, accents, apostrophes, ZIP+4, formatted phones), the true child
id, the household and the birth (twins and triplets share a birth id), and tags naming what
the generator did to this record. Iterating one yields (record, child_id). The same arguments
give the same records in any process.

The world. Hospital 0 is the regional children's specialty centre, hospitals 1..H-1 community
hospitals, each with its catchment (a region: 40 postcodes sharing a 3-digit prefix, one phone
area code); the specialty centre sees children from every region. A household has a surname
(the father's 80 %, the mother's 10 %, both hyphenated 7 % or as two words 3 %), a mother with
a maiden name, named parents, a postcode and two phones, moves at 8 % a year (new postcode,
mostly in the region; the home phone changes half the time, the mobile rarely), and 1-4 births
1-5 years apart, each a singleton, twins (2 % of births) or triplets (0.2 %): above the US
rates of about 1.6 % and 0.03 %, so the benchmark has enough of them. Names are drawn by
popularity (identity/names.py); about half come from outside the lists (generated rare
surnames, creative given names). Co-twins often share an initial or get matching names
(AIDEN/JAYDEN, AVA/EVA), but never names one letter apart unless both are real names. One
child in 500 is a stranger's "doppelganger": a child of another household, usually in another
region, with the same common surname, given name, sex and birth date as an existing child
(among children with a top-150 surname and a top-100 given name that is ~4 %, far more than
a real population of a million holds: a stress test for the matcher's precision).

Records. A child has 1-4 records at different hospitals (30/35/22/13 %); 2 % also have a
duplicate registration at one hospital. A newborn record (12 % of singletons, 60 % of
multiples) comes first, at the birth hospital, usually under a placeholder name ("BABY GIRL
SMITH", "BG", "TWIN A", "BABYGIRL^SMITH", "INFANT OF MARY SMITH", a quarter with the mother's
surname), flagging singleton or multiple birth and birth order most of the time; later
records carry the real name. Per record, independently: family or given typo 2 % each
(keyboard-adjacent substitution, drop, doubled letter, swapped letters, insertion), nickname
when the child goes by one (15 % of children, then 40 % of records), middle name used as given
(1 % of children), given/family transposed 0.6 %, middle name left out 35 % or an initial
15 %, birth date day/month swapped 0.8 % (when possible), one digit wrong 0.8 %, missing
0.4 %, wrong altogether 0.2 %, sex missing 1.5 % or wrong 0.3 %, unknown-patient alias
("UNKNOWN^MALE", "DOE^JOHN", "TRAUMA^ALPHA", usually without a birth date) 0.3 %, mother's
maiden name mistyped 2 % or replaced by her married name 4 %. Field capture differs by
hospital (the specialty centre: postcode 90 %, phone 85 %, mother's maiden name 50 %, parent
80 %; community hospitals 75/65/20/50 %; birth records 85/80/85/90 %). 4 % of children change
surname (adoption with new parents, a step-parent's name hyphenated, the mother's name); a
compound surname is written in part at some hospitals. These rates are plausible guesses for
a benchmark, not measurements.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field

import jellyfish

from . import names as N
from .matching import Demographics

REFERENCE_DATE = datetime.date(2025, 1, 1)  # "today" in the synthetic world
MAX_AGE_DAYS = 18 * 365 + 4
POSTCODES_PER_REGION = 40

TWIN_RATE = 0.02
TRIPLET_RATE = 0.002
DOPPELGANGER_RATE = 0.002
RECORDS_PER_CHILD = ((1, 0.30), (2, 0.35), (3, 0.22), (4, 0.13))
DUPLICATE_REGISTRATION = 0.02
NEWBORN_RECORD = {False: 0.12, True: 0.6}  # by multiple birth
PLACEHOLDER_AT_BIRTH = {False: 0.75, True: 0.9}
NICKNAME_CHILD, NICKNAME_RECORD = 0.15, 0.4
MIDDLE_AS_GIVEN_CHILD, MIDDLE_AS_GIVEN_RECORD = 0.01, 0.5
FAMILY_TYPO = GIVEN_TYPO = 0.02
MIDDLE_TYPO = 0.01
TRANSPOSED = 0.006
MIDDLE_LEFT_OUT, MIDDLE_INITIAL = 0.35, 0.15
DOB_SWAP, DOB_DIGIT, DOB_MISSING, DOB_WRONG = 0.008, 0.008, 0.004, 0.002
SEX_MISSING, SEX_WRONG = 0.015, 0.003
UNKNOWN_ALIAS = 0.003
MOVES_PER_YEAR = 0.08  # household moves: new postcode, often a new home phone
MOTHER_MAIDEN_TYPO, MOTHER_MARRIED_NAME = 0.02, 0.04
SURNAME_CHANGE = 0.04
PARTIAL_COMPOUND = 0.35  # records of a compound-surname child that keep one part
# capture rates: postcode, phone, mother's maiden name, parent name
CAPTURE_SPECIALTY = (0.90, 0.85, 0.50, 0.80)
CAPTURE_COMMUNITY = (0.75, 0.65, 0.20, 0.50)
CAPTURE_BIRTH = (0.85, 0.80, 0.85, 0.90)

_KEYBOARD = {
    "Q": "WA", "W": "QESA", "E": "WRDS", "R": "ETFD", "T": "RYGF", "Y": "TUHG", "U": "YIJH",
    "I": "UOKJ", "O": "IPLK", "P": "OL", "A": "QWSZ", "S": "AWEDXZ", "D": "SERFCX",
    "F": "DRTGVC", "G": "FTYHBV", "H": "GYUJNB", "J": "HUIKMN", "K": "JIOLM", "L": "KOP",
    "Z": "ASX", "X": "ZSDC", "C": "XDFV", "V": "CFGB", "B": "VGHN", "N": "BHJM", "M": "NJK",
}  # fmt: skip


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_SURNAME_HEADS = _words(
    "KOW AB BR STR HAL MOR VAN DEL GR PET OK NAK LIND ASH WIT KEL FAR MAL TOR SAN RAM KAM LUN "
    "NOR ROS SOL TAN VIL ZEL QUIN BAL DUR FEN GOL HOL JAN KRA LOR MAR NEL OST PRZ RUD SEV TRE "
    "WAL YAR ZAM BOG CZ DOM ESK FRO HUR IZ"
)
_SURNAME_MIDS = ("", "", "", "AN", "EN", "IN", "OR", "ER", "AL", "OV", "ARD", "ELL", "IS")
_SURNAME_TAILS = _words(
    "SKI SKY OWSKI EWICZ INGTON ERSON SON SEN STROM BERG MAN MANN OWITZ ENKO CHUK ETTI ELLI "
    "IAN YAN ADZE AKIS OPOULOS ES EZ AS ICH OVIC ER LEY WORTH FIELD TON BURY HAM WICK ER ADO "
    "ENA ARO"
)
_GIVEN_HEADS = _words(
    "KAY JAY BRAY AL MAK KEN NEV ZAY RY LAY AR BRI SKY MAL TAY KAM AD EV JAX ZEN NAV AM "
    "CAS DAL EM HAR ISL JOR KAL LEX MAV NOR ORI PAX RAY SAV TRI VAL WIN XAN YAS ZAR"
)
_GIVEN_MIDS = ("", "", "", "A", "E", "I", "LA", "RI", "DE")
_GIVEN_TAILS_F = _words("LEE LYNN LANI LIN LEIGH ANNA ELLE ANI ARI ESSA YN ISA ANA IYAH ORA INA")
_GIVEN_TAILS_M = _words("DEN SON ON EN TON LEN RIK ER IAN AR US O EL AN DRIC VIN")
_TWIN_PAIRS = (
    ("AIDEN", "JAYDEN"), ("ELLA", "EMMA"), ("AVA", "EVA"), ("LILY", "LUCY"), ("ETHAN", "EVAN"),
    ("ISAAC", "ISAIAH"), ("NOAH", "NOLAN"), ("HAYDEN", "BRAYDEN"), ("MADISON", "MACKENZIE"),
    ("MASON", "MILES"), ("JACOB", "JOSHUA"), ("OLIVIA", "SOPHIA"), ("LIAM", "LOGAN"),
)  # fmt: skip
_ACCENTED = {"JOSE": "José", "JESUS": "Jesús", "RAMON": "Ramón", "PENA": "Peña", "NUNEZ": "Núñez",
             "MUNOZ": "Muñoz", "IBANEZ": "Ibáñez", "ANGEL": "Ángel", "ZOE": "Zoë"}  # fmt: skip
_APOSTROPHE = {"OBRIEN": "O'Brien", "OCONNOR": "O'Connor", "ODONNELL": "O'Donnell",
               "ONEILL": "O'Neill", "ONEAL": "O'Neal"}  # fmt: skip


@dataclass(frozen=True)
class SyntheticRecord:
    record: Demographics
    child_id: str
    household_id: str
    birth_id: str  # twins and triplets share one
    tags: tuple[str, ...] = ()

    def __iter__(self):
        """(record, child_id), so `for record, child in generate(...)` works."""
        yield self.record
        yield self.child_id


@dataclass
class _Household:
    id: str
    region: int
    surname: str  # the children's surname at birth
    father: tuple[str, str]  # (given, family)
    mother: tuple[str, str]  # (given, current family)
    mother_maiden: str
    postcode: str
    phones: tuple[str, str]
    moves: list[tuple[datetime.date, str, tuple[str, str]]] = field(default_factory=list)

    def address_on(self, day: datetime.date) -> tuple[str, tuple[str, str]]:
        postcode, phones = self.postcode, self.phones
        for moved_on, new_postcode, new_phones in self.moves:
            if moved_on > day:
                break
            postcode, phones = new_postcode, new_phones
        return postcode, phones


@dataclass
class _Child:
    id: str
    household: _Household
    birth_id: str
    birth_size: int
    birth_order: int
    sex: str
    given: str
    middle: str
    dob: datetime.date
    nickname: str = ""
    by_middle: bool = False
    surname_changed_on: datetime.date | None = None
    new_surname: str = ""
    new_parent: tuple[str, str] | None = None
    change: str = ""  # what the surname change was: adopted, surname_hyphenated, ...
    tags: list[str] = field(default_factory=list)


class _World:
    def __init__(self, seed: int, hospitals: int) -> None:
        self.rng = random.Random(seed)
        self.hospitals = max(2, hospitals)
        self.regions = self.hospitals - 1
        rng = self.rng
        self.postcodes = []
        self.area_codes = []
        prefixes = rng.sample(range(100, 990), self.regions)
        for prefix in prefixes:
            tails = rng.sample(range(100), POSTCODES_PER_REGION)
            self.postcodes.append([f"{prefix:03d}{t:02d}" for t in tails])
            self.area_codes.append(str(rng.randrange(201, 990)))
        self.surname_weights = [N.surname_share(r) for r in range(1, len(N.SURNAMES) + 1)]
        self.boy_weights = [N.given_share(r) for r in range(1, len(N.BOY_NAMES) + 1)]
        self.girl_weights = [N.given_share(r) for r in range(1, len(N.GIRL_NAMES) + 1)]
        self.surname_listed = sum(self.surname_weights)
        self.boy_listed = sum(self.boy_weights)
        self.girl_listed = sum(self.girl_weights)
        self.mrn = [0] * self.hospitals

    # --- names ------------------------------------------------------------------------------

    def surname(self) -> str:
        rng = self.rng
        if rng.random() < self.surname_listed:
            return rng.choices(N.SURNAMES, self.surname_weights)[0]
        return rng.choice(_SURNAME_HEADS) + rng.choice(_SURNAME_MIDS) + rng.choice(_SURNAME_TAILS)

    def given(self, sex: str, avoid: tuple[str, ...] = ()) -> str:
        rng = self.rng
        for _ in range(50):
            if sex == "F":
                listed, names, weights = self.girl_listed, N.GIRL_NAMES, self.girl_weights
                tails = _GIVEN_TAILS_F
            else:
                listed, names, weights = self.boy_listed, N.BOY_NAMES, self.boy_weights
                tails = _GIVEN_TAILS_M
            if rng.random() < listed:
                name = rng.choices(names, weights)[0]
            elif rng.random() < 0.3:
                name = _respell(rng, rng.choices(names, weights)[0])
            else:
                name = rng.choice(_GIVEN_HEADS) + rng.choice(_GIVEN_MIDS) + rng.choice(tails)
            if name not in avoid and not any(N.are_nicknames(name, a) for a in avoid):
                return name
        return name + "A"

    def twin_given(self, sex: str, first: str, avoid: tuple[str, ...]) -> str:
        """A co-twin's name: a matching pair, the same initial or any name, but never one
        letter away from the first twin's (ISLA and ISLAE): parents choose names that differ,
        and such a pair would be a typo to any reader."""
        for _ in range(20):
            name = self._twin_given(sex, first, avoid)
            if (
                _edits(name, first) > 1
                or (name, first) in _TWIN_PAIRS
                or (first, name) in _TWIN_PAIRS
            ):
                return name
        return name

    def _twin_given(self, sex: str, first: str, avoid: tuple[str, ...]) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.12:
            for x, y in _TWIN_PAIRS:
                if first in (x, y):
                    other = y if first == x else x
                    if other not in avoid:
                        return other
        if roll < 0.45:
            names = N.GIRL_NAMES if sex == "F" else N.BOY_NAMES
            same = [n for n in names if n[0] == first[0] and n not in avoid]
            same = [n for n in same if not N.are_nicknames(n, first)]
            if same:
                return rng.choice(same[:40])
        return self.given(sex, avoid)

    def middle(self, sex: str) -> str:
        rng = self.rng
        if rng.random() < 0.6:
            return rng.choice(N.MIDDLE_NAMES_F if sex == "F" else N.MIDDLE_NAMES_M)
        return self.given(sex)

    # --- places -----------------------------------------------------------------------------

    def postcode(self, region: int) -> str:
        return self.rng.choice(self.postcodes[region])

    def phone(self, region: int) -> str:
        rng = self.rng
        return f"{self.area_codes[region]}{rng.randrange(200, 1000)}{rng.randrange(10000):04d}"

    def patient_id(self, hospital: int) -> str:
        self.mrn[hospital] += 1
        return f"{'SCMEDR'[hospital % 6]}{hospital}{self.mrn[hospital] * 7919 % 10_000_000:07d}"


def _edits(a: str, b: str) -> int:
    """Damerau-Levenshtein distance, capped at 2 (enough to tell one slip from two)."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > 1:
        return 2
    return min(2, jellyfish.damerau_levenshtein_distance(a, b))


def _is_common(surname: str, given: str, sex: str) -> bool:
    names = N.GIRL_NAMES if sex == "F" else N.BOY_NAMES
    return surname in N.SURNAMES[:150] and given in names[:100]


def _respell(rng: random.Random, name: str) -> str:
    """A creative spelling of a real name (KAYDEN -> KAYDYN, KATIE -> KATEE)."""
    swaps = [("Y", "I"), ("I", "Y"), ("EN", "YN"), ("EN", "IN"), ("IE", "EE"), ("C", "K"),
             ("K", "C"), ("AI", "AY"), ("EE", "I"), ("PH", "F"), ("LL", "L"),
             ("N", "NN")]  # fmt: skip
    rng.shuffle(swaps)
    for old, new in swaps:
        if old in name[1:]:
            i = name.index(old, 1)
            return name[:i] + new + name[i + len(old) :]
    return name + "E"


def _typo(rng: random.Random, word: str) -> str:
    """One keyboard slip: adjacent key, dropped, doubled, swapped or inserted letter."""
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word)) if rng.random() < 0.95 else 0
    ch = word[i]
    kind = rng.random()
    if kind < 0.4 and ch in _KEYBOARD:
        return word[:i] + rng.choice(_KEYBOARD[ch]) + word[i + 1 :]
    if kind < 0.6:
        return word[:i] + word[i + 1 :]
    if kind < 0.75:
        return word[:i] + ch + word[i:]
    if kind < 0.9 and i + 1 < len(word):
        return word[:i] + word[i + 1] + ch + word[i + 2 :]
    return word[:i] + rng.choice(_KEYBOARD.get(ch, "E")) + word[i:]


def _date_digit_typo(rng: random.Random, d: datetime.date) -> datetime.date:
    text = d.strftime("%Y%m%d")
    for _ in range(30):
        i = rng.randrange(2, 8)
        new = text[:i] + str(rng.randrange(10)) + text[i + 1 :]
        if new == text:
            continue
        try:
            wrong = datetime.datetime.strptime(new, "%Y%m%d").date()
        except ValueError:
            continue
        if wrong <= REFERENCE_DATE:
            return wrong
    return d


def _format_phone(rng: random.Random, digits: str) -> str:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return rng.choice(
        [digits, f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", f"1{digits}"]
    )


def _display(rng: random.Random, name: str) -> str:
    """As a sending system might write it: accents, apostrophes, mixed case."""
    out = name
    if name in _ACCENTED and rng.random() < 0.4:
        out = _ACCENTED[name]
    elif name in _APOSTROPHE and rng.random() < 0.6:
        out = _APOSTROPHE[name]
    if rng.random() < 0.1:
        out = out.title()
    return out


class _Generator:
    def __init__(self, n_children: int, seed: int, hospitals: int) -> None:
        self.n = n_children
        self.w = _World(seed, hospitals)
        self.rng = self.w.rng
        self.children: list[_Child] = []
        self.common: list[_Child] = []  # children with a common surname and given name
        self.households = 0

    # --- population -------------------------------------------------------------------------

    def household(self, region: int | None = None) -> _Household:
        w, rng = self.w, self.rng
        self.households += 1
        region = rng.randrange(w.regions) if region is None else region
        father_family, maiden = w.surname(), w.surname()
        kind = rng.random()
        if kind < 0.80:
            surname = father_family
        elif kind < 0.90:
            surname = maiden
        elif kind < 0.97:
            surname = f"{father_family}-{maiden}"
        else:
            surname = f"{father_family} {maiden}"
        mother_family = father_family if rng.random() < 0.7 else maiden
        h = _Household(
            id=f"H{self.households}",
            region=region,
            surname=surname,
            father=(w.given("M"), father_family),
            mother=(w.given("F"), mother_family),
            mother_maiden=maiden,
            postcode=w.postcode(region),
            phones=(w.phone(region), w.phone(region)),
        )
        day = REFERENCE_DATE - datetime.timedelta(days=MAX_AGE_DAYS)
        phones = h.phones
        while True:
            day += datetime.timedelta(days=1 + int(rng.expovariate(MOVES_PER_YEAR / 365.25)))
            if day > REFERENCE_DATE:
                break
            region = region if rng.random() < 0.8 else rng.randrange(w.regions)
            phones = (
                w.phone(region) if rng.random() < 0.5 else phones[0],
                w.phone(region) if rng.random() < 0.15 else phones[1],
            )
            h.moves.append((day, w.postcode(region), phones))
        return h

    def populate(self) -> None:
        rng = self.rng
        while len(self.children) < self.n:
            if self.children and rng.random() < DOPPELGANGER_RATE * 1.8:
                self.doppelganger()
                continue
            h = self.household()
            births = rng.choices((1, 2, 3, 4), (0.40, 0.38, 0.16, 0.06))[0]
            dob = REFERENCE_DATE - datetime.timedelta(days=rng.randrange(MAX_AGE_DAYS))
            names_used: list[str] = []
            for b in range(births):
                if b:
                    dob += datetime.timedelta(days=rng.randrange(400, 1800))
                if dob > REFERENCE_DATE or len(self.children) >= self.n:
                    break
                roll = rng.random()
                size = 3 if roll < TRIPLET_RATE else 2 if roll < TRIPLET_RATE + TWIN_RATE else 1
                self.birth(h, dob, size, names_used)

    def birth(self, h: _Household, dob: datetime.date, size: int, used: list[str]) -> None:
        w, rng = self.w, self.rng
        birth_id = f"{h.id}-B{dob.isoformat()}"
        first = ""
        for order in range(1, size + 1):
            if len(self.children) >= self.n:
                return
            sex = rng.choice("MF")
            if order > 1 and first:
                given = w.twin_given(sex, first, tuple(used))
            else:
                given = w.given(sex, tuple(used))
            first = first or given
            used.append(given)
            middle = w.middle(sex) if rng.random() < 0.75 else ""
            child = _Child(
                id=f"C{len(self.children) + 1}",
                household=h,
                birth_id=birth_id,
                birth_size=size,
                birth_order=order,
                sex=sex,
                given=given,
                middle=middle if middle != given else "",
                dob=dob,
            )
            self.life_events(child)
            self.children.append(child)
            if _is_common(h.surname, given, sex):
                self.common.append(child)

    def life_events(self, c: _Child) -> None:
        w, rng = self.w, self.rng
        nicks = [n for n in N.NICKNAME_GROUPS if c.given in n and c.given == n[0] and len(n) > 1]
        if nicks and rng.random() < NICKNAME_CHILD:
            c.nickname = rng.choice(nicks[0][1:])
        if c.middle and len(c.middle) > 2 and rng.random() < MIDDLE_AS_GIVEN_CHILD:
            c.by_middle = True
        age = (REFERENCE_DATE - c.dob).days
        if age > 200 and rng.random() < SURNAME_CHANGE:
            c.surname_changed_on = c.dob + datetime.timedelta(days=rng.randrange(180, age))
            kind = rng.random()
            h = c.household
            if kind < 0.45:  # adoption: new family altogether
                c.new_surname = w.surname()
                c.new_parent = (w.given("F"), c.new_surname)
                c.change = "adopted"
            elif kind < 0.75:  # step-parent's name hyphenated
                c.new_surname = f"{h.surname.split('-')[0]}-{w.surname()}"
                c.change = "surname_hyphenated"
            elif kind < 0.9 and h.mother_maiden != h.surname:
                c.new_surname = h.mother_maiden
                c.change = "mothers_surname"
            else:
                c.new_surname = w.surname()
                c.change = "surname_changed"

    def doppelganger(self) -> None:
        """A stranger's child in another town with the same common name, sex and birth date
        (SMITH^JAMES born the same day): as likely as the names are common, so the template is
        a child whose surname and given name are both among the most common."""
        rng = self.rng
        if not self.common:
            return
        twin_of = rng.choice(self.common)
        same_region = self.w.regions == 1 or rng.random() < 0.3
        region = twin_of.household.region
        if not same_region:
            region = (region + rng.randrange(1, self.w.regions)) % self.w.regions
        h = self.household(region)
        h.surname = twin_of.household.surname
        while h.postcode == twin_of.household.postcode:
            h.postcode = self.w.postcode(region)
        child = _Child(
            id=f"C{len(self.children) + 1}",
            household=h,
            birth_id=f"{h.id}-B{twin_of.dob.isoformat()}",
            birth_size=1,
            birth_order=1,
            sex=twin_of.sex,
            given=twin_of.given,
            middle=self.w.middle(twin_of.sex) if rng.random() < 0.75 else "",
            dob=twin_of.dob,
            tags=["doppelganger"],
        )
        self.children.append(child)

    # --- records ----------------------------------------------------------------------------

    def records(self) -> list[SyntheticRecord]:
        out: list[SyntheticRecord] = []
        for c in self.children:
            out += self.child_records(c)
        return out

    def child_records(self, c: _Child) -> list[SyntheticRecord]:
        w, rng = self.w, self.rng
        multiple = c.birth_size > 1
        home = c.household.region + 1
        k = rng.choices([n for n, _ in RECORDS_PER_CHILD], [p for _, p in RECORDS_PER_CHILD])[0]
        weights = [3.0 if h in (0, home) else 0.5 for h in range(w.hospitals)]
        chosen: list[int] = []
        for _ in range(min(k, w.hospitals)):
            pick = rng.choices(range(w.hospitals), weights)[0]
            chosen.append(pick)
            weights[pick] = 0.0
            if not any(weights):
                break
        if rng.random() < DUPLICATE_REGISTRATION:
            chosen.append(rng.choice(chosen))
        age = (REFERENCE_DATE - c.dob).days
        visits = sorted(rng.randrange(age + 1) for _ in chosen)
        newborn = rng.random() < NEWBORN_RECORD[multiple]
        if newborn:
            visits[0] = min(visits[0], rng.randrange(4))
            birth_hospital = home if rng.random() < 0.8 else 0
            if birth_hospital in chosen:
                chosen.remove(birth_hospital)
                chosen.insert(0, birth_hospital)
            else:
                chosen[0] = birth_hospital
        out = []
        for i, (hospital, day) in enumerate(zip(chosen, visits, strict=True)):
            at = c.dob + datetime.timedelta(days=day)
            is_birth = newborn and i == 0
            out.append(self.record(c, hospital, at, is_birth))
        return out

    def record(
        self, c: _Child, hospital: int, at: datetime.date, at_birth: bool
    ) -> SyntheticRecord:
        w, rng = self.w, self.rng
        h = c.household
        tags = list(c.tags)
        multiple = c.birth_size > 1
        if multiple:
            tags.append("multiple_birth")
        postcode, phones = h.address_on(at)
        changed = c.surname_changed_on is not None and at >= c.surname_changed_on
        surname = c.new_surname if changed else h.surname
        if changed:
            tags.append(c.change)
        parents = [h.mother, h.father]
        if changed and c.new_parent:
            parents = [c.new_parent]
        capture = (
            CAPTURE_BIRTH if at_birth else CAPTURE_SPECIALTY if hospital == 0 else CAPTURE_COMMUNITY
        )
        multiple_birth: bool | None = None
        birth_order: int | None = None
        dob: datetime.date | None = c.dob
        sex = c.sex
        middle = c.middle

        if at_birth and rng.random() < PLACEHOLDER_AT_BIRTH[multiple]:
            family, given = self.placeholder(c, h)
            middle = ""
            tags.append("placeholder")
        elif rng.random() < UNKNOWN_ALIAS and not at_birth:
            boy = sex == "M"
            family, given = rng.choice(
                [
                    ("UNKNOWN", "MALE" if boy else "FEMALE"),
                    ("DOE", "JOHN" if boy else "JANE"),
                    ("TRAUMA", rng.choice(sorted(N.PLACEHOLDER_ALPHA))),
                    ("UNKNOWN", "CHILD"),
                ]
            )
            middle = ""
            dob = None if rng.random() < 0.5 else datetime.date(c.dob.year, 1, 1)
            capture = (0.1, 0.1, 0.0, 0.1)
            tags.append("unknown_alias")
        else:
            family, given = surname, c.given
            if c.nickname and rng.random() < NICKNAME_RECORD:
                given = c.nickname
                tags.append("nickname")
            elif c.by_middle and rng.random() < MIDDLE_AS_GIVEN_RECORD:
                given, middle = c.middle, ""
                tags.append("middle_as_given")
            if " " in family or "-" in family:
                parts = family.replace("-", " ").split()
                roll = rng.random()
                if roll < PARTIAL_COMPOUND:
                    family = parts[0] if rng.random() < 0.7 else parts[-1]
                    tags.append("compound_part")
                elif roll < PARTIAL_COMPOUND + 0.15:
                    family = " ".join(parts) if "-" in family else "-".join(parts)
            if rng.random() < FAMILY_TYPO:
                family = _typo(rng, family)
                tags.append("family_typo")
            if rng.random() < GIVEN_TYPO:
                given = _typo(rng, given)
                tags.append("given_typo")
            if rng.random() < TRANSPOSED:
                family, given = given, family
                tags.append("transposed")
        if middle:
            roll = rng.random()
            if roll < MIDDLE_LEFT_OUT:
                middle = ""
            elif roll < MIDDLE_LEFT_OUT + MIDDLE_INITIAL:
                middle = middle[0]
            elif rng.random() < MIDDLE_TYPO:
                middle = _typo(rng, middle)

        if dob is not None and "unknown_alias" not in tags:
            roll = rng.random()
            if roll < DOB_SWAP and dob.day <= 12 and dob.day != dob.month:
                dob = datetime.date(dob.year, dob.day, dob.month)
                tags.append("dob_swap")
            elif roll < DOB_SWAP + DOB_DIGIT:
                dob = _date_digit_typo(rng, dob)
                tags.append("dob_digit")
            elif roll < DOB_SWAP + DOB_DIGIT + DOB_MISSING:
                dob = None
                tags.append("dob_missing")
            elif roll < DOB_SWAP + DOB_DIGIT + DOB_MISSING + DOB_WRONG:
                dob = dob + datetime.timedelta(days=rng.choice([-1, 1]) * rng.randrange(40, 900))
                tags.append("dob_wrong")
        roll = rng.random()
        if roll < SEX_MISSING:
            sex = rng.choice(["", "U", "O"])
        elif roll < SEX_MISSING + SEX_WRONG:
            sex = "F" if sex == "M" else "M"
            tags.append("sex_wrong")

        if at_birth:
            if multiple:
                multiple_birth = True if rng.random() < 0.85 else None
            else:
                multiple_birth = False if rng.random() < 0.7 else None
            birth_order = c.birth_order if multiple and rng.random() < 0.7 else None
        else:
            if multiple and rng.random() < 0.25:
                multiple_birth = True
                birth_order = c.birth_order if rng.random() < 0.5 else None
            elif not multiple and rng.random() < 0.15:
                multiple_birth = False

        p_post, p_phone, p_mother, p_parent = capture
        maiden = h.mother_maiden
        roll = rng.random()
        if roll < MOTHER_MAIDEN_TYPO:
            maiden = _typo(rng, maiden)
        elif roll < MOTHER_MAIDEN_TYPO + MOTHER_MARRIED_NAME:
            maiden = h.mother[1]  # her married name, entered as maiden
        parent = rng.choice(parents) if parents else ("", "")
        parent_text = ""
        if rng.random() < p_parent:
            pg, pf = parent
            parent_text = rng.choice([f"{pg} {pf}", f"{pf}, {pg}", f"{pf}^{pg}", f"{pg} {pf}"])
        record = Demographics(
            issuer=f"hospital-{hospital}|{'SPECIALTY' if hospital == 0 else 'COMMUNITY'}{hospital}",
            patient_id=w.patient_id(hospital),
            family=_display(rng, family),
            given=_display(rng, given),
            middle=middle,
            birth_date=dob,
            sex=sex,
            mother_maiden=_display(rng, maiden) if rng.random() < p_mother else "",
            parent_name=parent_text.title() if rng.random() < 0.2 else parent_text,
            postcode=(
                (postcode + f"-{rng.randrange(10000):04d}" if rng.random() < 0.3 else postcode)
                if rng.random() < p_post
                else ""
            ),
            phone=_format_phone(rng, rng.choice(phones)) if rng.random() < p_phone else "",
            multiple_birth=multiple_birth,
            birth_order=birth_order,
        )
        return SyntheticRecord(record, c.id, h.id, c.birth_id, tuple(tags))

    def placeholder(self, c: _Child, h: _Household) -> tuple[str, str]:
        rng = self.rng
        surname = h.mother[1] if rng.random() < 0.25 else h.surname
        girl = c.sex == "F"
        marker = ""
        if c.birth_size > 1 and rng.random() < 0.9:
            marker = rng.choice(["ABC"[c.birth_order - 1], str(c.birth_order)])
        forms = [
            (surname, "BABY GIRL" if girl else "BABY BOY"),
            (surname, "BG" if girl else "BB"),
            (surname, "GIRL" if girl else "BOY"),
            ("BABYGIRL" if girl else "BABYBOY", surname),
            (surname, "BABY"),
            (surname, "INFANT"),
            (surname, "NEWBORN"),
            (surname, f"INFANT OF {h.mother[0]}"),
            (f"INFANT OF {h.mother[0]} {surname}", ""),
            (surname, "NN"),
        ]
        weights = [0.3, 0.15, 0.08, 0.08, 0.1, 0.05, 0.06, 0.06, 0.04, 0.03]
        family, given = rng.choices(forms, weights)[0]
        if marker:
            if rng.random() < 0.4:
                return surname, f"{'TWIN' if c.birth_size == 2 else 'TRIPLET'} {marker}"
            if given and "OF" not in given:
                return family, f"{given} {marker}"
            return surname, f"BABY {marker}"
        return family, given


def generate(n_children: int, seed: int, hospitals: int = 4) -> list[SyntheticRecord]:
    """Records of n_children synthetic children at `hospitals` hospitals; the same arguments
    give the same records."""
    g = _Generator(n_children, seed, hospitals)
    g.populate()
    return g.records()
