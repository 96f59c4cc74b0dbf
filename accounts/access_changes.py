"""The one signal that says what someone may see could have changed.

Why: the access policy (policy.py) is asked afresh by every Django request, but two things
hold on to its answer between requests: the rendered fast path's image grants
(archive/dicomweb/grants.py, up to DICOMWEB_GRANT_SECONDS) and the live worklist sockets
(worklist/consumers.py, for as long as a tab stays open). A deactivated reader, or a reading
agreement that ended, must not keep seeing images until those expire, so whatever changes an
input of the policy announces it here and they ask again.

`access_changed` is sent after the change commits (so whoever asks again sees it) with:
- user_id: only this user's access changed (the account, one of its memberships, a sign-out
  of one of its sessions);
- organization_id: the access of this organisation's members changed (its kind, one of its
  reading agreements);
- neither: anyone's may have (an identity link undone: a child's priors are no longer
  another child's).

Model changes are caught here by Django's model signals, so the admin and the org-admin
pages need not remember; services that change the policy's inputs with a queryset UPDATE
(identity links) call `announce` themselves.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal

from .models import Membership, Organization, ReadingAgreement
from .policy import forget_memberships

access_changed = Signal()  # kwargs: user_id: int | None, organization_id: int | None


def announce(user_id: int | None = None, organization_id: int | None = None) -> None:
    """Send access_changed once the current transaction commits (at once outside one), and
    forget this request's memberships now (policy.py), so it sees its own change.

    Robust: the change is committed by then, so a receiver that fails is logged by Django
    and does not turn the save that caused it into an error."""
    forget_memberships()
    transaction.on_commit(
        lambda: access_changed.send(sender=None, user_id=user_id, organization_id=organization_id),
        robust=True,
    )


# Saving only these fields changes nothing the policy reads (a sign-in saves last_login).
_USER_FIELDS_THE_POLICY_IGNORES = {"last_login"}


def _user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created:
        return  # a new account has no grants and no sockets yet
    if update_fields is not None and set(update_fields) <= _USER_FIELDS_THE_POLICY_IGNORES:
        return
    announce(user_id=instance.pk)


def _user_deleted(sender, instance, **kwargs) -> None:
    announce(user_id=instance.pk)


def _signed_out(sender, request=None, user=None, **kwargs) -> None:
    """A session signed out (the sign-out page, or IdleTimeoutMiddleware at an idle session's
    next request): the user's sockets re-check, and the ones of that session close at once.

    Django sends user_logged_out before it flushes the session, and a socket in another process
    may re-check the moment the announcement reaches it: the session leaves the store first
    (logout()'s flush then finds nothing left to delete; this request keeps its copy, so the
    other receivers still see its key)."""
    if user is None or user.pk is None:
        return
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        session.delete()
    announce(user_id=user.pk)


def _membership_changed(sender, instance: Membership, **kwargs) -> None:
    announce(user_id=instance.user_id)


def _credentials_changed(sender, instance, **kwargs) -> None:
    if isinstance(instance, Membership):
        announce(user_id=instance.user_id)


def _agreement_changed(sender, instance: ReadingAgreement, **kwargs) -> None:
    announce(organization_id=instance.reading_group_id)


def _organization_saved(sender, instance: Organization, created: bool, **kwargs) -> None:
    if not created:
        announce(organization_id=instance.pk)


def connect() -> None:
    """Called by AccountsConfig.ready()."""
    user_model = settings.AUTH_USER_MODEL
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="access.user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="access.user_deleted")
    user_logged_out.connect(_signed_out, dispatch_uid="access.signed_out")
    for signal, name in ((post_save, "saved"), (post_delete, "deleted")):
        signal.connect(_membership_changed, sender=Membership, dispatch_uid=f"access.m_{name}")
        signal.connect(_agreement_changed, sender=ReadingAgreement, dispatch_uid=f"access.a_{name}")
    m2m_changed.connect(
        _credentials_changed,
        sender=Membership.credentialed_facilities.through,
        dispatch_uid="access.credentials",
    )
    post_save.connect(_organization_saved, sender=Organization, dispatch_uid="access.org_saved")
