"""`row_has(queryset)`: "a matching row exists", written so the database checks it row by row.

Why: a QIDO search walks the study-date index newest first and stops at its page, so the
access policy's conditions on a study should be cheap probes of that one row (an index
lookup). Written as `EXISTS` or `IN (subquery)` inside the policy's `OR`, PostgreSQL
instead builds the whole matching set first (every series of a modality, every child a
reading group reaches: tens of thousands of rows at 100,000 studies, ~100 ms per search,
even for one child's priors). A scalar subquery with `LIMIT 1` is always evaluated per
row, and PostgreSQL runs per-row filters cheapest first. SQLite needs statistics to start
such a probe from the right end (readingroom/planner_stats.py).

Not for a search's own filters: there a plain `EXISTS` lets PostgreSQL choose a semi-join,
which is faster when another filter is selective (ModalitiesInStudy=XA with a name prefix:
32 ms with EXISTS, 186 ms probed row by row, 100,000 studies, 2026-12-07).

The subquery must be correlated with the outer row through `OuterRef`; its ordering is
dropped (it only asks whether a row exists), and it selects a constant rather than the row's
key, so that PostgreSQL can answer it from an index alone when the index holds every column
it tests (an index-only scan; the key made it read the table for each row found).
"""

from __future__ import annotations

from django.db.models import IntegerField, Q, QuerySet, Subquery, Value
from django.db.models.lookups import IsNull


def row_has(queryset: QuerySet) -> Q:
    """True for an outer row for which `queryset` (correlated with it) has a row."""
    first = Subquery(
        queryset.order_by().annotate(row_probe_one=Value(1)).values("row_probe_one")[:1],
        output_field=IntegerField(),
    )
    return Q(IsNull(first, False))
