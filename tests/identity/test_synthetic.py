"""The synthetic pediatric population (identity.synthetic): reproducible, realistic enough to
exercise every pediatric case, and the matcher's blocking finds the records of one child in
it. No database."""

from __future__ import annotations

import collections
import itertools

import pytest

from identity import matching, synthetic


@pytest.fixture(scope="module")
def population():
    return synthetic.generate(3000, seed=7)


def test_same_seed_same_records():
    assert synthetic.generate(400, seed=3) == synthetic.generate(400, seed=3)


def test_other_seed_other_records():
    a = [r.record for r in synthetic.generate(400, seed=3)]
    b = [r.record for r in synthetic.generate(400, seed=4)]
    assert a != b


def test_records_unpack_as_record_and_child():
    for record, child in synthetic.generate(50, seed=1):
        assert isinstance(record, matching.Demographics)
        assert child.startswith("C")


def test_children_records_and_hospitals(population):
    by_child = collections.Counter(r.child_id for r in population)
    assert len(by_child) == 3000
    assert set(by_child.values()) <= {1, 2, 3, 4, 5}
    assert 1.8 < len(population) / len(by_child) < 2.6
    issuers = {r.record.issuer for r in population}
    assert issuers == {
        f"hospital-{h}|{'SPECIALTY' if h == 0 else 'COMMUNITY'}{h}" for h in range(4)
    }
    ids = [(r.record.issuer, r.record.patient_id) for r in population]
    assert len(ids) == len(set(ids))  # an MRN names one record per issuer


def test_hospitals_parameter():
    records = synthetic.generate(300, seed=2, hospitals=6)
    assert len({r.record.issuer for r in records}) == 6


def test_every_pediatric_case_occurs(population):
    tags = collections.Counter(t for r in population for t in r.tags)
    for tag in (
        "placeholder",
        "multiple_birth",
        "nickname",
        "family_typo",
        "given_typo",
        "transposed",
        "dob_swap",
        "dob_digit",
        "dob_missing",
        "compound_part",
        "adopted",
        "doppelganger",
        "sex_wrong",
        "middle_as_given",
    ):
        assert tags[tag] > 0, tag
    records = [r.record for r in population]
    assert any(d.postcode == "" for d in records) and any(d.phone == "" for d in records)
    assert any(d.mother_maiden == "" for d in records)
    assert any("-" in d.postcode for d in records)  # ZIP+4 as sent
    assert any(any(c.islower() for c in d.family) for d in records)  # mixed case as sent


def test_twins_and_triplets_share_a_birth(population):
    births: dict[str, set[str]] = collections.defaultdict(set)
    for r in population:
        births[r.birth_id].add(r.child_id)
    sizes = collections.Counter(len(children) for children in births.values())
    assert sizes[2] > 0
    multiple = [r for r in population if len(births[r.birth_id]) > 1]
    by_birth = collections.defaultdict(list)
    for r in multiple:
        by_birth[r.birth_id].append(r)
    for records in by_birth.values():
        households = {r.household_id for r in records}
        assert len(households) == 1
        named = {r.child_id: r.record.given.upper() for r in records if not r.tags}
        if len(set(named)) > 1:  # co-twins recorded without errors have different names
            assert len(set(named.values())) == len(set(named))


def test_siblings_share_a_household_not_a_birth(population):
    by_household = collections.defaultdict(set)
    for r in population:
        by_household[r.household_id].add(r.birth_id)
    assert any(len(births) > 1 for births in by_household.values())


def test_placeholder_records_come_from_birth_and_are_named_later(population):
    by_child = collections.defaultdict(list)
    for r in population:
        by_child[r.child_id].append(r)
    renamed = 0
    for records in by_child.values():
        if any("placeholder" in r.tags for r in records):
            assert any(matching.is_placeholder_name(r.record) for r in records)
            renamed += any(not matching.is_placeholder_name(r.record) for r in records)
    assert renamed > 0


def test_common_names_are_common(population):
    families = collections.Counter(matching.normalise(r.record).family for r in population)
    top, count = families.most_common(1)[0]
    assert top == "SMITH" or count > 20


def test_blocking_finds_the_records_of_one_child(population):
    """Blocking recall: pairs of records of one child that share at least one key."""
    keys = [matching.blocking_keys(r.record) for r in population]
    by_child = collections.defaultdict(list)
    for i, r in enumerate(population):
        by_child[r.child_id].append(i)
    pairs = [p for ids in by_child.values() for p in itertools.combinations(ids, 2)]
    found = sum(bool(keys[i] & keys[j]) for i, j in pairs)
    assert found / len(pairs) >= 0.98
    buckets = collections.Counter(k for ks in keys for k in ks)
    assert max(buckets.values()) <= 20  # no key gathers a crowd
