"""Several DICOM SCP processes on one port: the parent listens, forked workers accept.

Split from archive.dimse, which holds the AE and its handlers; this module only multiplies it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import sys
import time

from django.conf import settings
from django.db import connections
from pynetdicom.transport import AssociationServer

from readingroom.db_pool import close_pools

from .dimse import StoreSCP, build_ae, copy_contexts_cheaply, log
from .storage import get_storage


def serve_workers(host: str | None = None, port: int | None = None, workers: int = 2) -> int:
    """Run the SCP in `workers` forked processes sharing one listening socket; return exit code.

    One Python process tops out at one core (the GIL) however many associations it serves, so
    parallel senders are spread over processes. The parent removes stray temp files (once, before
    any worker can be writing), binds and listens, closes its database connections (they must
    not be shared across fork) and forks; each worker runs an ordinary pynetdicom server on the
    inherited socket and accepts from it. An idle worker wins the race for a new connection,
    because a worker already serving associations waits a moment before accepting (see
    _PreforkedServer); this balances better than SO_REUSEPORT, whose kernel hash can put three
    of four senders on one process, and a restarted server cannot share a port with leftovers.

    DICOM_MAX_ASSOCIATIONS stays a limit for the whole server: each worker accepts at most
    DICOM_MAX_ASSOCIATIONS // workers associations (at least 1, so the total is `workers` when
    the setting is smaller than that). A worker at its share leaves new connections to the
    others as long as it can, then accepts and rejects them as pynetdicom always does.

    The parent supervises: SIGTERM/SIGINT are forwarded (SIGTERM) to the workers, which stop at
    once exactly as a single-process server does (nothing acknowledged depends on a clean stop);
    if a worker exits on its own the others are stopped too and the exit code is non-zero, for
    the service manager to restart the whole server (and so sweep temp files again). Workers die
    with the parent even on SIGKILL (PR_SET_PDEATHSIG), so no orphan keeps serving.
    """
    removed = get_storage().remove_stray_temp_files()
    if removed:
        log.info("removed %d temp files left by an interrupted write", removed)
    address = (host or settings.DICOM_HOST, settings.DICOM_PORT if port is None else port)
    listener = _listen(address)
    share = max(1, settings.DICOM_MAX_ASSOCIATIONS // workers)
    log.info(
        "DICOM SCP %s listening on %s:%s with %d worker processes (%d associations each)",
        settings.DICOM_AE_TITLE,
        *address,
        workers,
        share,
    )
    connections.close_all()
    close_pools()  # a pool's sockets must not be shared across fork either
    parent = os.getpid()
    children: dict[int, int] = {}
    stopping = False

    def stop(signum=None, frame=None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signals = {signal.SIGTERM, signal.SIGINT}
    previous = {sig: signal.signal(sig, stop) for sig in signals}
    try:
        # Blocked while forking: a worker must never run the parent's handler.
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)
        try:
            for number in range(workers):
                pid = os.fork()
                if pid == 0:  # the worker
                    code = 1
                    try:
                        _run_worker(listener, parent, share, number)
                        code = 0
                    except BaseException:
                        log.exception("DICOM worker %d failed", number)
                    finally:
                        logging.shutdown()
                        os._exit(code)
                children[pid] = number
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        listener.close()
        code = 0
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            number = children.pop(pid, None)
            if number is None:
                continue
            if not stopping:
                log.error(
                    "DICOM worker %d (pid %d) exited (status %#x); stopping the server",
                    number,
                    pid,
                    status,
                )
                code = 1
                stop()
        return code
    finally:
        stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listen(address: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 5
    while True:
        try:
            listener.bind(address)
            break
        except OSError as exc:
            # Workers of a server killed a moment ago may still be closing the port.
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                listener.close()
                raise
            time.sleep(0.1)
    listener.listen(128)
    # Several processes accept from it: the losers of a race must not block in accept().
    listener.setblocking(False)
    return listener


def _run_worker(listener: socket.socket, parent: int, share: int, number: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    ae = build_ae(maximum_associations=share)
    scp = StoreSCP()
    server_class = type("PreforkedServer", (_PreforkedServer,), {"listener": listener})
    server = ae.make_server(
        listener.getsockname()[:2], evt_handlers=scp.handlers, server_class=server_class
    )
    copy_contexts_cheaply(server)
    log.info("DICOM worker %d (pid %d) ready", number, os.getpid())
    server.serve_forever()


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this worker when the parent dies, however it dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


class _PreforkedServer(AssociationServer):
    """A pynetdicom server accepting from a socket the parent bound and listens on."""

    listener: socket.socket
    # Seconds a worker waits per association it already serves before accepting, so that an
    # idle worker takes the connection; a worker at its share waits _FULL_DELAY.
    _BUSY_DELAY = 0.002
    _FULL_DELAY = 0.05

    def server_bind(self) -> None:
        self.socket.close()
        self.socket = self.listener
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        pass  # the parent listens already

    def server_close(self) -> None:
        # Only this process's descriptor: shutdown() would stop the socket for every worker.
        self.socket.close()

    def get_request(self):
        busy = len(self.active_associations)
        if busy >= self.ae.maximum_associations:
            time.sleep(self._FULL_DELAY)
        elif busy:
            time.sleep(min(self._BUSY_DELAY * busy, self._FULL_DELAY))
        # Raises BlockingIOError when another worker took it; socketserver ignores OSError.
        return super().get_request()
