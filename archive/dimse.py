"""The DICOM (DIMSE) adapter: a pynetdicom AE accepting C-ECHO and C-STORE.

Calling AE titles are checked against enabled DicomNode rows at association time; each
accepted association is tied to its organisation. Handlers never decode pixel data; they
hand the received bytes to archive.services.ingest_instance and answer with its outcome.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
import queue
import select
import socket
import threading
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connections
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import (
    AE,
    AllStoragePresentationContexts,
    StoragePresentationContexts,
    evt,
    register_uid,
)
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import Verification, uid_to_service_class
from pynetdicom.transport import AssociationServer

from accounts.services import enabled_calling_ae_titles, node_for_calling_ae

from . import arrivals, services
from .failures import STATUS_FOR_CODE
from .storage import get_storage

log = logging.getLogger(__name__)

# Accepted as received: modalities keep their own encoding and the archive never transcodes.
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent)
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.100",  # MPEG2 MP@ML (echo loops)
    "1.2.840.10008.1.2.4.102",  # MPEG-4 AVC/H.264 HP@L4.1
    "1.2.840.10008.1.2.4.103",  # MPEG-4 AVC/H.264 BD
    "1.2.840.10008.1.2.4.106",  # MPEG-4 AVC/H.264 Stereo
]

# Every storage SOP class pynetdicom knows, retired ones included (old echo and NM carts still
# send the retired Ultrasound and Nuclear Medicine classes).
STORAGE_SOP_CLASSES = sorted(
    {c.abstract_syntax for c in (*AllStoragePresentationContexts, *StoragePresentationContexts)}
)

# C-STORE statuses (PS3.4 B.2.3); 0xC0xx are this archive's "cannot understand" reasons.
# Never a valid AE title on the wire (contains a control character): keeps pynetdicom's
# "require calling AE" check on even when no node is enabled.
_NO_NODE = "\x01no-node\x01"


@dataclass
class _AssociationState:
    source: services.IngestSource | None
    studies: set[int] = field(default_factory=set)
    # Patient/study/series rows this association already filed (see services.IngestCache).
    cache: services.IngestCache = field(default_factory=services.IngestCache)


class ReadingRoomAE(AE):
    """An AE whose allowed calling AE titles are read from the database per association."""

    def _enabled_titles(self) -> list[str]:
        try:
            return enabled_calling_ae_titles() or [_NO_NODE]
        except DatabaseError:
            log.exception("cannot read DICOM nodes; refusing the association")
            return [_NO_NODE]

    require_calling_aet = property(_enabled_titles, AE.require_calling_aet.fset)


class StoreSCP:
    """Event handlers with their per-association state; one instance per running server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._associations: dict[object, _AssociationState] = {}

    @property
    def handlers(self) -> list[tuple]:
        return [
            (evt.EVT_REQUESTED, self.on_requested),
            (evt.EVT_ESTABLISHED, self.on_established),
            (evt.EVT_REJECTED, self.on_rejected),
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_RELEASED, self.on_end),
            (evt.EVT_ABORTED, self.on_end),
            (evt.EVT_CONN_CLOSE, self.on_close),
        ]

    def on_requested(self, event: evt.Event) -> None:
        # Before the A-ASSOCIATE-AC goes out: once it has, the sender's first C-STORE can reach
        # the DUL thread (which logs it) before the reactor thread runs on_established.
        _no_per_message_logging(event.assoc)

    def on_established(self, event: evt.Event) -> None:
        _speed_up_transport(event.assoc)
        _wake_instead_of_polling(event.assoc)
        calling = event.assoc.requestor.ae_title.strip()
        node = node_for_calling_ae(calling)
        source = (
            services.IngestSource(node.organization, f"dimse:{node.ae_title}", node)
            if node
            else None
        )
        with self._lock:
            self._associations[event.assoc] = _AssociationState(source)

    def on_rejected(self, event: evt.Event) -> None:
        connections.close_all()  # opened by the calling AE check in this thread
        requestor = event.assoc.requestor
        log.warning(
            "association rejected: calling AE %r called AE %r from %s:%s",
            requestor.ae_title,
            event.assoc.acceptor.ae_title if event.assoc.acceptor else "",
            requestor.address,
            requestor.port,
        )

    def on_echo(self, event: evt.Event) -> int:
        return 0x0000

    def on_store(self, event: evt.Event) -> Dataset:
        with self._lock:
            state = self._associations.get(event.assoc)
        if state is None or state.source is None:
            # The node was disabled or removed after negotiation.
            return _status("processing_failure", "calling AE title is not an enabled node")
        request = event.request
        try:
            outcome = services.ingest_instance(
                request.DataSet.getvalue(),
                event.context.transfer_syntax,
                state.source,
                expected_sop_class_uid=str(request.AffectedSOPClassUID),
                expected_sop_instance_uid=str(request.AffectedSOPInstanceUID),
                cache=state.cache,
            )
        except OSError as exc:
            log.exception("storage failure")
            code = (
                "out_of_resources"
                if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                else "processing_failure"
            )
            return _status(code, f"storage error: {exc.strerror or exc}")
        except DatabaseError as exc:
            log.exception("index failure")
            return _status("out_of_resources", f"index unavailable: {type(exc).__name__}")
        except Exception as exc:
            log.exception("unexpected ingest failure")
            return _status("processing_failure", f"internal error: {type(exc).__name__}")
        if not outcome.accepted:
            return _status(outcome.code, outcome.message)
        if outcome.study_id is not None:
            state.studies.add(outcome.study_id)
        return _status_success()

    def on_end(self, event: evt.Event) -> None:
        """Released or aborted: runs in the association's thread, which owns its DB connection."""
        try:
            self._finish(event.assoc)
        finally:
            connections.close_all()  # this thread's connections only

    def on_close(self, event: evt.Event) -> None:
        """Fallback for a connection that ended without release or abort (other thread)."""
        self._finish(event.assoc)

    def _finish(self, assoc: object) -> None:
        with self._lock:
            state = self._associations.pop(assoc, None)
        if not (state and state.studies):
            return
        try:
            arrivals.record_arrivals(state.studies, "association_end")
        except Exception:
            log.exception("could not record arrivals; the sweep will announce them")


def _speed_up_transport(assoc) -> None:
    """Read each PDU with a few large recv_into calls instead of pynetdicom's 4 KiB recv loop.

    Same contract as pynetdicom's AssociationSocket.recv (block until `nr_bytes` arrived or
    the peer closed, returning what was read); a 512 KiB CT takes ~130 recv calls and as
    many bytearray extensions the other way, all holding the GIL.
    """
    assoc_socket = getattr(assoc.dul, "socket", None)
    if assoc_socket is None or getattr(assoc_socket, "socket", None) is None:
        return

    def recv(nr_bytes: int) -> bytearray:
        raw = assoc_socket.socket
        buffer = bytearray(nr_bytes)
        received = 0
        with memoryview(buffer) as view:
            while received < nr_bytes:
                count = raw.recv_into(view[received:], nr_bytes - received)
                if not count:
                    break  # closed by the peer: return what arrived, as pynetdicom does
                received += count
        if received < nr_bytes:
            del buffer[received:]
        return buffer

    assoc_socket.recv = recv


def _no_per_message_logging(assoc) -> None:
    """Unbind pynetdicom's standard DIMSE message logging as the association is requested.

    For every C-STORE request its handler copies the received data set (`getvalue()`, 512 KiB
    for a CT) only to log that one is present, formats a dozen lines for DEBUG and logs
    "Received Store Request" at INFO. Negotiation (PDU) logging stays, and so do this
    module's logs of every refusal and failure. The SCP binds nothing to these two events
    itself, so whatever is bound there is pynetdicom's logging.
    """
    for event in (evt.EVT_DIMSE_RECV, evt.EVT_DIMSE_SENT):
        for handler, _args in list(assoc.get_handlers(event)):
            assoc.unbind(event, handler)


# Longest a waiting reactor sleeps before re-checking its flags; only matters when idle.
_IDLE_WAIT = 0.05


def _wake_instead_of_polling(assoc) -> None:
    """Let both pynetdicom threads block until there is work instead of polling every 1 ms.

    pynetdicom's DUL thread sleeps 1 ms whenever a loop found nothing to do and its
    association reactor sleeps 1 ms per loop: on one association each C-STORE request was
    noticed ~1.2 ms after the previous response had gone out, the handler started ~0.3 ms
    after the request was complete and the response waited for the DUL's next wake-up
    (measured 2026-11; ~7 ms per 512x512 CT in all, ~4 ms of it ingest). While established
    (state Sta6) the DUL now waits in select() on its socket and a wake-up socket pair that
    send_pdu() writes to, and the reactor blocks on the DIMSE message queue, which an ACSE
    primitive (release, abort) also wakes. Both waits end after _IDLE_WAIT, so an idle
    association costs ~20 wake-ups a second, and every other state keeps pynetdicom's loop.
    """
    dul, dimse = assoc.dul, assoc.dimse
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)

    def wake() -> None:
        # OSError: a wake-up already pending (buffer full) or the association has ended.
        with contextlib.suppress(OSError):
            wake_w.send(b"\0")

    def send_pdu(primitive, _send_pdu=dul.send_pdu) -> None:
        _send_pdu(primitive)
        wake()

    def is_transport_event(_is_transport_event=dul._is_transport_event) -> bool:
        if _is_transport_event():
            return True
        raw = getattr(dul.socket, "socket", None)
        if dul.state_machine.current_state != "Sta6" or raw is None:
            if wake_r.fileno() != -1:
                wake_r.close()  # only this (the DUL) thread selects on it
                wake_w.close()
            return False
        if dul.to_provider_queue.queue or dul.event_queue.queue:
            return False  # work arrived meanwhile: let pynetdicom's loop take it in order
        readable, _, _ = select.select([raw, wake_r], [], [], _IDLE_WAIT)
        if wake_r in readable:
            with contextlib.suppress(OSError):
                wake_r.recv(4096)
        # A primitive queued meanwhile (the C-STORE response) becomes its event now, as
        # pynetdicom's next loop would after sleeping 1 ms; the loop handles it right after.
        return dul._process_recv_primitive() or _is_transport_event()

    user_put = dul.to_user_queue.put

    def to_user_put(item, *args, **kwargs) -> None:
        user_put(item, *args, **kwargs)
        dimse.msg_queue.put((None, None))  # wake the reactor: (None, None) means "no message"

    def get_msg(block: bool = False):
        if block or not assoc.is_established:
            return type(dimse).get_msg(dimse, block)
        try:
            return dimse.msg_queue.get(timeout=_IDLE_WAIT)
        except queue.Empty:
            return None, None

    dul.send_pdu = send_pdu
    dul._is_transport_event = is_transport_event
    dul.to_user_queue.put = to_user_put
    dimse.get_msg = get_msg


def _status(code: str, message: str) -> Dataset:
    status = Dataset()
    status.Status = STATUS_FOR_CODE.get(code, 0x0110)
    status.ErrorComment = message.encode("ascii", "replace").decode()[:64]
    return status


def _status_success() -> Dataset:
    status = Dataset()
    status.Status = 0x0000
    return status


def _register_retired_storage_classes() -> None:
    """pynetdicom negotiates retired storage classes but has no service class for them."""
    for uid in STORAGE_SOP_CLASSES:
        if uid_to_service_class(uid) is not StorageServiceClass:
            keyword = UID(uid).keyword or "Storage_" + uid.replace(".", "_")
            register_uid(uid, keyword, StorageServiceClass)


def build_ae(maximum_associations: int | None = None) -> ReadingRoomAE:
    _register_retired_storage_classes()
    ae = ReadingRoomAE(ae_title=settings.DICOM_AE_TITLE)
    ae.require_called_aet = True
    ae.maximum_associations = maximum_associations or settings.DICOM_MAX_ASSOCIATIONS
    ae.maximum_pdu_size = settings.DICOM_MAX_PDU
    ae.network_timeout = settings.DICOM_NETWORK_TIMEOUT
    ae.acse_timeout = 30
    ae.dimse_timeout = settings.DICOM_NETWORK_TIMEOUT
    ae.add_supported_context(Verification)
    for sop_class in STORAGE_SOP_CLASSES:
        ae.add_supported_context(sop_class, TRANSFER_SYNTAXES)
    return ae


def start_server(host: str | None = None, port: int | None = None, block: bool = False):
    """Start the SCP. With block=False returns the running AssociationServer."""
    services_storage = get_storage()
    removed = services_storage.remove_stray_temp_files()
    if removed:
        log.info("removed %d temp files left by an interrupted write", removed)
    ae = build_ae()
    scp = StoreSCP()
    address = (host or settings.DICOM_HOST, settings.DICOM_PORT if port is None else port)
    log.info("DICOM SCP %s listening on %s:%s", settings.DICOM_AE_TITLE, *address)
    if block:
        server = ae.make_server(address, evt_handlers=scp.handlers)
        copy_contexts_cheaply(server)
        server.serve_forever()
        return None
    server = ae.start_server(address, block=False, evt_handlers=scp.handlers)
    copy_contexts_cheaply(server)
    return server


class _CheapCopyContexts(list):
    """The server's supported contexts, deep-copied fast for each new association.

    pynetdicom deep-copies every supported presentation context per association; with every
    storage SOP class x 20 transfer syntaxes that alone took ~30 ms of each association's
    negotiation here. Negotiation only reads these contexts (results are new objects), so a
    shallow copy of each context with its own transfer syntax list is just as isolated.
    """

    def __deepcopy__(self, memo: dict) -> list:
        copies = []
        for context in self:
            clone = copy.copy(context)
            clone._transfer_syntax = list(context._transfer_syntax)
            copies.append(clone)
        return copies


def copy_contexts_cheaply(server: AssociationServer) -> None:
    server.contexts = _CheapCopyContexts(server.contexts)
