"""SLA: a case past due is shown overdue and triggers exactly one breach e-mail to the group's
schedulers, over Django's locmem backend and over real SMTP (aiosmtpd on loopback); unassigned
cases near breach and STAT cases are announced once; e-mails carry a link, not patient data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tests.conftest import free_port, wait_for
from worklist import notifications, services
from worklist.models import Case, NotificationPreference, Priority, RoutingRule

from .conftest import make_study, verified_client

pytestmark = pytest.mark.django_db


def _overdue_case(world):
    case = services.open_case(make_study(world.riverside, name="SECRET^CHILD").pk)
    Case.objects.filter(pk=case.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    return case


def test_breach_is_shown_and_mailed_once(world, client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    case = _overdue_case(world)
    html = verified_client(client, world.scheduler).get("/worklist/").content.decode()
    row = html[html.index(f'id="case-{case.pk}"') :].split("</tr>")[0]
    assert "overdue" in row
    assert notifications.check_sla()["breach"] == 1
    assert notifications.check_sla()["breach"] == 0
    breach = [m for m in mail.outbox if "SLA breached" in m.subject]
    assert len(breach) == 1 and breach[0].to == ["scheduler@example.org"]
    assert f"/worklist/#case-{case.pk}" in breach[0].body
    assert "SECRET" not in breach[0].body and case.study.study_instance_uid not in breach[0].body


def test_breach_preference_off_sends_nothing(world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    NotificationPreference.objects.create(user=world.scheduler, email_breach=False)
    _overdue_case(world)
    notifications.check_sla()
    assert not [m for m in mail.outbox if "SLA breached" in m.subject]


def test_unassigned_near_breach_mailed_once(world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    case = services.open_case(make_study(world.riverside).pk)
    Case.objects.filter(pk=case.pk).update(due_at=timezone.now() + timedelta(minutes=5))
    assert notifications.check_sla()["near_breach"] == 1
    assert notifications.check_sla()["near_breach"] == 0
    assert len([m for m in mail.outbox if "near SLA breach" in m.subject]) == 1


def test_stat_case_mails_eligible_readers(world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    RoutingRule.objects.create(name="stat", modality="CT", priority=Priority.STAT)
    case = services.open_case(make_study(world.lakeview).pk)  # reader2: no licence in PA
    # The notice is a task enqueued after commit; here the worker's part runs directly.
    assert notifications.notify_stat(case.pk) == 1
    assert notifications.notify_stat(case.pk) == 0
    (message,) = [m for m in mail.outbox if "STAT" in m.subject]
    assert message.to == ["reader@example.org"]


def test_breach_mail_over_real_smtp(world, settings):
    from aiosmtpd.controller import Controller

    class Collect:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    handler = Collect()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        _overdue_case(world)
        assert notifications.sweep()["breach"] == 1
        assert notifications.sweep()["breach"] == 0
        wait_for(lambda: handler.messages, timeout=5)
        assert len(handler.messages) == 1
        rcpt, content = handler.messages[0]
        assert rcpt == ["scheduler@example.org"] and "SLA breached" in content
    finally:
        controller.stop()


def test_failed_send_is_retried_by_the_next_sweep(world, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    case = _overdue_case(world)
    assert notifications.check_sla()["breach"] == 0  # nobody listens on that port
    case.refresh_from_db()
    assert case.breach_notified_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notifications.check_sla()["breach"] == 1
