"""Who may associate: enabled calling AE titles only, the right called AE, a bounded number."""

from __future__ import annotations

import logging
import time

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from accounts.models import DicomNode
from archive.dimse import start_server
from archive.models import Instance
from tests.conftest import free_port, storescu
from tests.factories import pydicom_file


def associate(port: int, calling: str = "RIVERSIDE", called: str = "READINGROOM"):
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage)
    return ae.associate("127.0.0.1", port, ae_title=called)


def test_unknown_calling_ae_is_rejected_and_logged(scp, caplog, storage_dir):
    caplog.set_level(logging.WARNING, logger="archive.dimse")
    result = storescu(scp, pydicom_file("CT_small.dcm"), aet="STRANGER")
    assert result.returncode != 0
    assert "Association Rejected" in result.stderr + result.stdout
    assert Instance.objects.count() == 0
    assert not storage_dir.exists() or not any(p.is_file() for p in storage_dir.rglob("*"))
    # The SCP logs after sending the rejection, so storescu may have exited just before.
    deadline = time.monotonic() + 5
    while not any("STRANGER" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the rejection was not logged"
        time.sleep(0.02)


def test_stores_are_not_logged_per_message_but_negotiation_is(scp, caplog):
    """pynetdicom's per-message DIMSE logging (a copy of every data set) is unbound; its
    association logging stays."""
    caplog.set_level(logging.DEBUG, logger="pynetdicom")
    result = storescu(scp, pydicom_file("CT_small.dcm"))
    assert result.returncode == 0, result.stderr
    assert Instance.objects.count() == 1
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("pynetdicom")]
    assert any("Association" in m for m in messages), "negotiation is still logged"
    assert not any("Store Request" in m or "C-STORE RQ" in m for m in messages)


def test_rejection_is_permanent_calling_ae_not_recognised(scp):
    assoc = associate(scp, calling="STRANGER")
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03)


def test_disabled_node_is_rejected(scp):
    DicomNode.objects.filter(ae_title="LAKEVIEW").update(enabled=False)
    assert associate(scp, calling="LAKEVIEW").is_rejected
    ok = associate(scp, calling="RIVERSIDE")
    assert ok.is_established
    ok.release()


def test_node_enabled_later_is_accepted_without_restart(scp, lakeview):
    DicomNode.objects.create(organization=lakeview, ae_title="LAKEVIEW_CT")
    assoc = associate(scp, calling="LAKEVIEW_CT")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_wrong_called_ae_is_rejected(scp):
    assoc = associate(scp, called="SOMEONE_ELSE")
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.diagnostic == 0x07


def test_no_enabled_node_rejects_everyone(scp):
    DicomNode.objects.update(enabled=False)
    assert associate(scp).is_rejected


def test_association_limit_rejects_transiently(transactional_db, riverside, settings):
    settings.DICOM_MAX_ASSOCIATIONS = 1
    port = free_port()
    server = start_server("127.0.0.1", port, block=False)
    try:
        first = associate(port)
        assert first.is_established
        second = associate(port)
        assert second.is_rejected
        rj = second.acceptor.primitive
        # rejected-transient, service-provider (presentation), local-limit-exceeded
        assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
        first.release()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("title", ["", "   ", "A" * 17, "BAD\\AE"])
def test_invalid_ae_titles_are_refused_by_validation(db, riverside, title):
    from django.core.exceptions import ValidationError

    node = DicomNode(organization=riverside, ae_title=title)
    with pytest.raises(ValidationError):
        node.full_clean()
