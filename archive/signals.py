"""Events the archive sends. Receivers must be idempotent: a sweep may re-drive an event."""

from __future__ import annotations

from django.dispatch import Signal

# Sent with study_id and arrival_id (ids only) after the arrival row is committed.
study_received = Signal()

# Sent with sop_instance_uid after a new version of an instance replaced the current one, so
# anything derived from the old bytes (rendered frames) can be dropped.
instance_replaced = Signal()
