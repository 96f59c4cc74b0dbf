"""Reporting and the worklist: who may write a study's report right now is whoever holds its
case's lock (worklist.services.take_lock: of simultaneous openers exactly one wins). A study
without a case (no routing, e.g. imported history) is reported without a lock."""

from __future__ import annotations

from django.utils import timezone


class Locked(Exception):
    """Someone else holds the case: the message says who and since when."""


def _case(study):
    from worklist.models import OPEN_STATUSES, Case

    return Case.objects.filter(study=study, status__in=OPEN_STATUSES).first()


def hold(user, study) -> None:
    """Take (or keep) the case's lock for `user`, or raise Locked. Called when the editor
    opens, on every autosave (the heartbeat that keeps the lock alive) and before signing."""
    from worklist.services import WorklistError, take_lock, touch_lock

    case = _case(study)
    if case is None:
        return
    if case.lock_holder_id == user.pk and touch_lock(case.pk, user):
        return
    if case.lock_holder_id and case.lock_seen_at and case.lock_seen_at >= _lock_cutoff():
        raise Locked(_locked(case.lock_holder, case.locked_at))
    try:
        state = take_lock(case.pk, user)
    except WorklistError as exc:
        raise Locked(exc.message) from None
    if not state.won:
        raise Locked(_locked(state.holder, state.since))


def _lock_cutoff():
    from datetime import timedelta

    from django.conf import settings

    return timezone.now() - timedelta(seconds=settings.WORKLIST_LOCK_TIMEOUT_SECONDS)


def _locked(holder, since) -> str:
    when = timezone.localtime(since).strftime("%H:%M:%S") if since else "?"
    return f"This case is locked by {holder} since {when}."


def touch(user, study) -> bool:
    """Keep `user`'s live lock alive (the editor's and the viewer's heartbeat); never takes a
    lock nobody gave them. False when they do not hold it."""
    from worklist.services import touch_lock

    case = _case(study)
    return bool(case and case.lock_holder_id == user.pk and touch_lock(case.pk, user))
