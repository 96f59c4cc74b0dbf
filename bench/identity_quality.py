"""Match quality of the master patient index on a synthetic pediatric population (no database).

Why: a wrong automatic link shows one child's images in another child's record; a missed one
hides a prior. This measures both for identity.matching on a population whose truth is known.

How: identity.synthetic.generate(--children, --seed, --hospitals) makes the records; the
candidate pairs are every pair of records sharing a blocking key (identity.matching.
blocking_keys), as the database's candidate search finds them; each is compared and decided
(link / review / separate). A true pair is two records of one child; a twin pair is two
records of different children of one birth (twins, triplets).

Printed, with the targets next to them (exit status 1 when one is missed): blocking recall
(true pairs sharing a key), candidates compared per record (and scaled to 1,000,000 children:
candidates from other households grow with the population, siblings and twins do not;
--children 200000 --blocking-only measures instead of scaling), the largest key bucket, what
each kind of key finds; precision, recall and F1 of automatic links; recall with the review
queue (link + review); pairs sent to review (share of true pairs, per 1,000 records, how many
are the same child, why); twin and triplet pairs linked; the same after closing automatic
links transitively into persons, as the database does; runtime. Targets: precision >= 0.999
(pairwise and transitive), recall with review >= 0.97, no twin or triplet pair linked.

--estimate counts, for each field outcome, its share among true pairs (m) and among random
pairs of different children (u): the source of the M_U table in identity/matching.py.
--show N prints N false links and a sample of missed pairs with their evidence and the
generator's tags.

Usage:
    .venv/bin/python bench/identity_quality.py [--children 20000] [--seed 11] [--hospitals 4]
                                               [--estimate] [--show N] [--blocking-only]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from identity import matching, synthetic  # noqa: E402  (run as a script)

TARGET_PRECISION = 0.999
TARGET_RECALL_WITH_REVIEW = 0.97
SCALE_CHILDREN = 1_000_000


def _pairs_of(groups: dict[str, list[int]]) -> set[tuple[int, int]]:
    out: set[tuple[int, int]] = set()
    for members in groups.values():
        out.update(itertools.combinations(sorted(members), 2))
    return out


def candidate_pairs(records: list[synthetic.SyntheticRecord]) -> tuple[set, dict]:
    buckets: dict[str, list[int]] = collections.defaultdict(list)
    keys_per_record = 0
    for i, r in enumerate(records):
        keys = matching.blocking_keys(r.record)
        keys_per_record += len(keys)
        for key in keys:
            buckets[key].append(i)
    by_kind: dict[str, dict[str, list[int]]] = collections.defaultdict(dict)
    for key, members in buckets.items():
        by_kind[key.split(":", 1)[0]][key] = members
    kinds = {kind: _pairs_of(b) for kind, b in sorted(by_kind.items())}
    sizes = sorted(len(b) for b in buckets.values())
    stats = {
        "keys": len(buckets),
        "keys_per_record": keys_per_record / max(1, len(records)),
        "largest": sizes[-1] if sizes else 0,
        "largest_key": max(buckets, key=lambda k: len(buckets[k])) if buckets else "",
        "p99": sizes[int(0.99 * (len(sizes) - 1))] if sizes else 0,
        "kinds": kinds,
    }
    return set().union(*kinds.values()) if kinds else set(), stats


class _Groups:
    """Union-find over record indexes: automatic links closed transitively, as persons."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def evaluate(records, pairs, true_pairs, show: int) -> dict:
    child = [r.child_id for r in records]
    birth = [r.birth_id for r in records]
    outcome_counts: collections.Counter = collections.Counter()
    fp, twins_linked, twins_review = [], 0, 0
    decided: dict[tuple[int, int], tuple[str, matching.Comparison]] = {}
    started = time.perf_counter()
    for i, j in pairs:
        c = matching.compare(records[i].record, records[j].record)
        decided[(i, j)] = (matching.decide(c), c)
    compare_seconds = time.perf_counter() - started
    groups = _Groups(len(records))
    review_reasons: collections.Counter = collections.Counter()
    for (i, j), (outcome, c) in decided.items():
        same = child[i] == child[j]
        outcome_counts[(outcome, same)] += 1
        if outcome == "review":
            reason = c.veto.split(":")[0] if c.veto else "score between thresholds"
            kind = "same child" if same else "twins" if birth[i] == birth[j] else "different"
            review_reasons[(reason, kind)] += 1
        if outcome == "link":
            groups.union(i, j)
            if not same:
                fp.append((c.score, i, j, c))
        twin = not same and birth[i] == birth[j]
        if twin and outcome == "link":
            twins_linked += 1
        if twin and outcome == "review":
            twins_review += 1
    missed = [
        (i, j) for (i, j) in true_pairs if decided.get((i, j), ("separate",))[0] == "separate"
    ]
    tp_link = outcome_counts[("link", True)]
    fp_link = outcome_counts[("link", False)]
    tp_review = outcome_counts[("review", True)]
    review = tp_review + outcome_counts[("review", False)]
    precision = tp_link / max(1, tp_link + fp_link)
    recall = tp_link / max(1, len(true_pairs))
    # transitive: every pair of records in one group
    members: dict[int, list[int]] = collections.defaultdict(list)
    for i in range(len(records)):
        members[groups.find(i)].append(i)
    t_true = t_false = t_twins = 0
    for m in members.values():
        for i, j in itertools.combinations(m, 2):
            if child[i] == child[j]:
                t_true += 1
            else:
                t_false += 1
                t_twins += birth[i] == birth[j]
    result = {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(1e-12, precision + recall),
        "recall_with_review": (tp_link + tp_review) / max(1, len(true_pairs)),
        "review": review,
        "review_true": tp_review,
        "twins_linked": twins_linked,
        "twins_review": twins_review,
        "links": tp_link + fp_link,
        "false_links": fp_link,
        "t_precision": t_true / max(1, t_true + t_false),
        "t_recall": t_true / max(1, len(true_pairs)),
        "t_false": t_false,
        "t_twins": t_twins,
        "compare_us": 1e6 * compare_seconds / max(1, len(pairs)),
        "review_reasons": review_reasons,
    }
    if show:
        _show(records, fp, missed, decided, show)
    return result


def _describe(r: synthetic.SyntheticRecord) -> str:
    d = r.record
    return (
        f"{r.child_id:>7} {d.family}^{d.given}^{d.middle} {d.birth_date} {d.sex} "
        f"mm={d.mother_maiden} par={d.parent_name} pc={d.postcode} ph={d.phone} "
        f"mb={d.multiple_birth} bo={d.birth_order} {list(r.tags)}"
    )


def _show(records, fp, missed, decided, n) -> None:
    print(f"\n--- false links ({len(fp)}) ---")
    for score, i, j, c in sorted(fp, key=lambda x: -x[0])[:n]:
        print(
            f"score {score} veto={c.veto!r}\n  {_describe(records[i])}\n  {_describe(records[j])}"
        )
        print("  " + ", ".join(f"{e.field}:{e.outcome}:{e.weight}" for e in c.evidence))
    print(f"\n--- missed true pairs ({len(missed)}), sample ---")
    rng = random.Random(0)
    for i, j in rng.sample(missed, min(n, len(missed))):
        got = decided.get((i, j))
        if got is None:
            print(f"not a candidate\n  {_describe(records[i])}\n  {_describe(records[j])}")
            continue
        c = got[1]
        print(
            f"score {c.score} veto={c.veto!r}\n  {_describe(records[i])}\n  {_describe(records[j])}"
        )
        print("  " + ", ".join(f"{e.field}:{e.outcome}:{e.weight}" for e in c.evidence))


def estimate(records, pairs_sample: int, seed: int) -> None:
    """Share of each field outcome among true pairs (m) and random non-pairs (u)."""
    by_child: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(records):
        by_child[r.child_id].append(i)
    true_pairs = sorted(_pairs_of(by_child))
    rng = random.Random(seed)
    random_pairs = []
    while len(random_pairs) < pairs_sample:
        i, j = rng.randrange(len(records)), rng.randrange(len(records))
        if records[i].child_id != records[j].child_id:
            random_pairs.append((i, j))
    m: collections.Counter = collections.Counter()
    u: collections.Counter = collections.Counter()
    for counter, pairs in ((m, true_pairs), (u, random_pairs)):
        for i, j in pairs:
            for e in matching.compare(records[i].record, records[j].record).evidence:
                counter[(e.field, e.outcome)] += 1
    print(
        f"\nfield outcome shares: m over {len(true_pairs):,} true pairs, "
        f"u over {len(random_pairs):,} random pairs of different children"
    )
    print(f"{'field':15} {'outcome':22} {'m counted':>10} {'u counted':>10}   table (m, u)")
    for key in sorted(set(m) | set(u)):
        table = matching.M_U.get(key)
        shown = f"({table[0]:g}, {table[1]:g})" if table else ""
        print(f"{key[0]:15} {key[1]:22} {m[key] / len(true_pairs):10.5f} "
              f"{u[key] / len(random_pairs):10.6f}   {shown}")  # fmt: skip


def _line(label: str, value: str, target: str = "", ok: bool | None = None) -> str:
    mark = "" if ok is None else ("  PASS" if ok else "  FAIL")
    return f"  {label:44} {value:>14}  {target}{mark}"


def _true_pairs(records) -> set[tuple[int, int]]:
    by_child: dict[str, list[int]] = collections.defaultdict(list)
    for i, r in enumerate(records):
        by_child[r.child_id].append(i)
    return _pairs_of(by_child)


def _blocking_lines(args, records, pairs, keys, true_set) -> list[str]:
    n = len(records)
    household = [r.household_id for r in records]
    others = pairs - true_set
    strangers = sum(household[i] != household[j] for i, j in others)
    same = 2 * len(pairs & true_set) / max(1, n)
    other = 2 * len(others) / max(1, n)
    # siblings and twins do not multiply with the population; strangers sharing a key do
    at_scale = same + 2 * (
        len(others) - strangers + strangers * SCALE_CHILDREN / args.children
    ) / max(1, n)
    kinds = keys["kinds"]
    lines = [
        "blocking",
        _line("true pairs (records of one child)", f"{len(true_set):,}"),
        _line(
            "blocking recall (true pairs sharing a key)",
            f"{len(pairs & true_set) / max(1, len(true_set)):.4f}",
        ),
        _line("keys per record", f"{keys['keys_per_record']:.1f}"),
        _line(
            "candidates compared per record",
            f"{same + other:.2f}",
            f"({same:.2f} same child; ~{at_scale:.0f} at 1M children)",
        ),
        _line("largest key bucket (records)", f"{keys['largest']}", keys["largest_key"]),
        _line("99th percentile bucket (records)", f"{keys['p99']}"),
        "  key kind: candidate pairs / of them true / true pairs no other kind finds",
    ]
    for kind, kp in kinds.items():
        others = set().union(*(v for k, v in kinds.items() if k != kind))
        found = kp & true_set
        lines.append(f"    {kind}: {len(kp):>10,} {len(found):>10,} {len(found - others):>8,}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--hospitals", type=int, default=4)
    parser.add_argument("--estimate", action="store_true", help="count m and u per outcome")
    parser.add_argument("--show", type=int, default=0, help="print N errors with evidence")
    parser.add_argument("--blocking-only", action="store_true", help="skip comparisons")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    records = synthetic.generate(args.children, args.seed, args.hospitals)
    t1 = time.perf_counter()
    pairs, keys = candidate_pairs(records)
    true_set = _true_pairs(records)
    t2 = time.perf_counter()
    print(
        f"\nidentity matching quality: {args.children:,} children, {len(records):,} records, "
        f"{args.hospitals} hospitals, seed {args.seed}"
    )
    print(
        f"  thresholds: link >= {matching.AUTO_LINK:g} (uncorroborated "
        f">= {matching.AUTO_LINK_UNCORROBORATED:g}), review >= {matching.REVIEW:g}, "
        f"household cap {matching.HOUSEHOLD_CAP:g} bits"
    )
    lines = _blocking_lines(args, records, pairs, keys, true_set)
    if args.blocking_only:
        lines += ["runtime", _line("generate", f"{t1 - t0:.1f} s"),
                  _line("blocking keys and candidate pairs", f"{t2 - t1:.1f} s")]  # fmt: skip
        print("\n".join(lines))
        return 0
    r = evaluate(records, pairs, true_set, args.show)
    t3 = time.perf_counter()
    n = len(records)
    checks = [
        r["precision"] >= TARGET_PRECISION,
        r["recall_with_review"] >= TARGET_RECALL_WITH_REVIEW,
        r["twins_linked"] == 0,
        r["t_precision"] >= TARGET_PRECISION,
        r["t_twins"] == 0,
    ]
    lines += [
        "automatic links (pairwise)",
        _line("links", f"{r['links']:,}"),
        _line("precision", f"{r['precision']:.5f}", f">= {TARGET_PRECISION}", checks[0]),
        _line("false links", f"{r['false_links']}"),
        _line("recall", f"{r['recall']:.4f}"),
        _line("F1", f"{r['f1']:.4f}"),
        _line("recall with review queue (link + review)", f"{r['recall_with_review']:.4f}",
              f">= {TARGET_RECALL_WITH_REVIEW}", checks[1]),
        _line("twin/triplet pairs linked", f"{r['twins_linked']}", "== 0", checks[2]),
        "review queue",
        _line("pairs sent to review", f"{r['review']:,}"),
        _line("  as share of true pairs", f"{r['review'] / max(1, len(true_set)):.4f}"),
        _line("  as share of candidate pairs", f"{r['review'] / max(1, len(pairs)):.4f}"),
        _line("  per 1,000 records", f"{1000 * r['review'] / max(1, n):.1f}"),
        _line("  of which the same child", f"{r['review_true'] / max(1, r['review']):.3f}"),
        _line("  twin/triplet pairs in review", f"{r['twins_review']}"),
        *(_line(f"  {reason} ({kind})", f"{count:,}")
          for (reason, kind), count in sorted(r["review_reasons"].items())),
        "automatic links closed transitively (persons)",
        _line("precision", f"{r['t_precision']:.5f}", f">= {TARGET_PRECISION}", checks[3]),
        _line("record pairs wrongly in one person", f"{r['t_false']}"),
        _line("recall", f"{r['t_recall']:.4f}"),
        _line("twin/triplet pairs in one person", f"{r['t_twins']}", "== 0", checks[4]),
        "runtime",
        _line("generate", f"{t1 - t0:.1f} s"),
        _line("blocking keys and candidate pairs", f"{t2 - t1:.1f} s"),
        _line("compare + decide", f"{t3 - t2:.1f} s", f"({r['compare_us']:.0f} us per pair)"),
    ]  # fmt: skip
    print("\n".join(lines))
    if args.estimate:
        estimate(records, 400_000, args.seed)
    ok = all(checks)
    print(f"\n{'all targets met' if ok else 'TARGETS MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
