"""Crash safety: SIGKILL the SCP process mid-transfer and check what survives the restart.

The archive promises that an instance is acknowledged (C-STORE Success) only once its file is
durable and its row committed. So after a hard kill, every acknowledged instance must be
there, byte-identical; no row may point at a missing file; no half-written file may be
visible; and the restarted server must go on storing. The storage layer's own promise (a
failed put leaves neither a partial file nor a temp file, and never damages a good copy) is
checked directly with faults injected into the system calls it makes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config, evt
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.sop_class import CTImageStorage, Verification

from archive.dicomfile import split_part10
from archive.models import Instance
from archive.storage import (
    TEMP_FOLDER,
    TEMP_PREFIX,
    FileSystemStorage,
    get_storage,
    instance_key,
)
from tests.conftest import ROOT, child_env, free_port, wait_for
from tests.factories import dataset_sha256, write_copies

SOURCE = "693_UNCR.dcm"  # 512 x 512 CT, 16 bits: about 512 KiB of pixel data
PDU_SIZE = 16384
ACKNOWLEDGED_BEFORE_KILL = 40


# --- the SCP as a separate process -----------------------------------------------------------


class ServerProcess:
    """`manage.py dicom_server` on the test database and storage folder, killable at will."""

    def __init__(self, port: int, log_dir: Path) -> None:
        self.port = port
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.log = self.log_dir / f"server-{self.starts}.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "dicom_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            # The server advertises a small maximum PDU too, so one CT goes out in ~33 PDUs.
            env=child_env(DICOM_MAX_PDU=str(PDU_SIZE)),
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers_echo, timeout=60, interval=0.2)

    def _answers_echo(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False  # not listening yet
        ae = AE(ae_title="RIVERSIDE")
        ae.acse_timeout = 5
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", self.port, ae_title="READINGROOM")
        if not assoc.is_established:
            return False
        try:
            status = assoc.send_c_echo()
            return status.get("Status") == 0x0000
        finally:
            assoc.release()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def server(transactional_db, riverside, tmp_path):
    """A factory-started SCP process; always killed at teardown, before the DB is flushed."""
    proc = ServerProcess(free_port(), tmp_path)
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def raw_file_send(monkeypatch):
    """pynetdicom sends a file's data set bytes as they are on disk (no decode/re-encode)."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


# --- kill switches ----------------------------------------------------------------------------


class KillOnFragment:
    """SIGKILLs the server once the armed transfer has put `after` data fragments on the wire.

    Bound to EVT_PDU_SENT on the sending association, so the kill lands at a known point of
    the upload, before the server has the whole data set.
    """

    def __init__(self) -> None:
        self.fragments = 0
        self.most_fragments = 0
        self.target: tuple[int, int] | None = None
        self.fired = threading.Event()

    def new_transfer(self) -> None:
        self.fragments = 0

    def arm(self, pid: int, after: int) -> None:
        self.target = (pid, after)

    def on_pdu_sent(self, event) -> None:
        if not isinstance(event.pdu, P_DATA_TF):
            return
        for pdv in event.pdu.presentation_data_value_items:
            if pdv.presentation_data_value[0] & 0x01:
                continue  # a command fragment
            self.fragments += 1
            self.most_fragments = max(self.most_fragments, self.fragments)
            if self.target and not self.fired.is_set() and self.fragments == self.target[1]:
                os.kill(self.target[0], signal.SIGKILL)
                self.fired.set()


class KillOnFile(threading.Thread):
    """SIGKILLs the server the moment a matching name appears in the folder it writes to.

    Watching for the temp file lands the kill while the data is being written and fsynced;
    watching for the final name lands it after the rename, before the row is committed.
    """

    def __init__(self, pid: int, folder: Path, matches) -> None:
        super().__init__(daemon=True)
        self.pid, self.folder, self.matches = pid, folder, matches
        self.fired = threading.Event()
        self.stop = threading.Event()
        self.seen: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                names = os.listdir(self.folder)
            except FileNotFoundError:
                names = []
            hits = [n for n in names if self.matches(n)]
            if hits:
                os.kill(self.pid, signal.SIGKILL)
                self.seen = hits
                self.fired.set()
                return
            time.sleep(0.0001)  # let the sending thread have the GIL


def store_scu() -> AE:
    ae = AE(ae_title="RIVERSIDE")
    ae.maximum_pdu_size = PDU_SIZE
    ae.acse_timeout = 10
    ae.dimse_timeout = 30
    ae.network_timeout = 30
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    return ae


def associate(port: int, switch: KillOnFragment | None = None):
    handlers = [(evt.EVT_PDU_SENT, switch.on_pdu_sent)] if switch else []
    assoc = store_scu().associate("127.0.0.1", port, ae_title="READINGROOM", evt_handlers=handlers)
    assert assoc.is_established, "the SCP refused the association"
    return assoc


def sop_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def assert_complete_instance(path: Path, sop: str | None = None) -> pydicom.Dataset:
    """A stored file parses to the end and its pixel data is whole."""
    ds = pydicom.dcmread(path)  # reads every element, pixel data included
    if sop is not None:
        assert ds.SOPInstanceUID == sop
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.BitsAllocated) // 8
    assert len(ds.PixelData) == expected, f"{path.name}: pixel data is cut short"
    return ds


# --- SIGKILL mid-transfer ----------------------------------------------------------------------

KILL_POINTS = [
    "mid_upload",  # the data set is still arriving: the server has not begun to store it
    "temp_file_written",  # the server is writing and fsyncing its temp file
    "file_renamed",  # the file is in place; the row is not committed, nothing acknowledged
]


@pytest.mark.slow
@pytest.mark.parametrize("kill_point", KILL_POINTS)
def test_sigkill_mid_transfer_loses_no_acknowledged_instance(
    server, raw_file_send, tmp_path, kill_point
):
    files = write_copies(tmp_path / "in", ACKNOWLEDGED_BEFORE_KILL + 2, source=SOURCE)
    sent_digest = {sop_of(p): dataset_sha256(p) for p in files}
    in_flight_path = files[ACKNOWLEDGED_BEFORE_KILL]
    in_flight = sop_of(in_flight_path)
    header = pydicom.dcmread(in_flight_path, stop_before_pixels=True)
    root = Path(settings.STORAGE_DIR)
    assert root == get_storage().root
    final_key = instance_key(
        header.StudyInstanceUID, header.SeriesInstanceUID, in_flight, sent_digest[in_flight]
    )
    server.start()

    on_fragment = KillOnFragment()
    on_file = None
    acknowledged: list[str] = []
    assoc = associate(server.port, on_fragment)
    try:
        for path in files[:ACKNOWLEDGED_BEFORE_KILL]:
            on_fragment.new_transfer()
            status = assoc.send_c_store(path)
            assert status.get("Status") == 0x0000, f"{path.name} refused: {status}"
            acknowledged.append(sop_of(path))
        # Several PDUs per instance, so "mid-upload" is a real place in the stream.
        assert on_fragment.most_fragments >= 10
        on_fragment.new_transfer()
        if kill_point == "mid_upload":
            on_fragment.arm(server.proc.pid, after=12)
        else:
            final_name = final_key.rsplit("/", 1)[1]
            if kill_point == "temp_file_written":
                watched, matches = root / TEMP_FOLDER, (lambda name: name.startswith(TEMP_PREFIX))
            else:
                watched, matches = (root / final_key).parent, (lambda name: name == final_name)
            on_file = KillOnFile(server.proc.pid, watched, matches)
            on_file.start()
        status = assoc.send_c_store(in_flight_path)
        if status.get("Status") == 0x0000:
            acknowledged.append(in_flight)  # the server won the race: held to the same promise
    finally:
        if on_file is not None:
            on_file.stop.set()
            on_file.join(timeout=10)
        if assoc.is_established:
            assoc.abort()
    fired = on_file.fired if on_file is not None else on_fragment.fired
    assert fired.is_set(), f"the kill at {kill_point} never fired:\n{server.log_tail()}"
    server.proc.wait(timeout=30)
    assert server.proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL
    left_by_crash = sorted(p.name for p in root.rglob(f"{TEMP_PREFIX}*"))
    if kill_point == "file_renamed":
        # The rename had happened when the kill fired; the crash cannot undo it.
        assert (root / final_key).is_file()
    # What the crash left, for the log (a temp file is usually among it at temp_file_written).
    print(
        f"{kill_point}: in-flight status {status!r}, temp files {left_by_crash}, "
        f"rows {Instance.objects.count()}, final file {(root / final_key).exists()}"
    )

    server.start()  # restart exactly the same way

    # 1. Every acknowledged instance survived, byte-identical to what was sent.
    rows = {row.sop_instance_uid: row for row in Instance.objects.all()}
    for sop in acknowledged:
        assert sop in rows, f"acknowledged {sop} has no row after the crash"
        row = rows[sop]
        path = root / row.storage_key
        assert path.is_file(), f"acknowledged {sop}: file {row.storage_key} is missing"
        assert_complete_instance(path, sop)
        assert path.stat().st_size == row.size
        assert dataset_sha256(path) == row.sha256 == sent_digest[sop]

    # 2. No phantom and no orphan rows: only what was sent, and each row's file is there.
    assert set(rows) <= set(acknowledged) | {in_flight}
    for sop, row in rows.items():
        path = root / row.storage_key
        assert path.is_file(), f"row {sop} points at a missing file"
        assert dataset_sha256(path) == row.sha256

    # 3. No visible partial file: temp files are swept at start-up; every .dcm is whole.
    leftovers = [p for p in root.rglob(f"{TEMP_PREFIX}*")]
    assert leftovers == [], f"temp files survived the restart: {leftovers}"
    stored = sorted(root.rglob("*.dcm"))
    assert len(stored) >= len(acknowledged)
    for path in stored:
        ds = assert_complete_instance(path)
        _, dataset = split_part10(path.read_bytes())
        sop, digest16, _ = path.name.rsplit(".", 2)
        assert str(ds.SOPInstanceUID) == sop
        assert hashlib.sha256(dataset).hexdigest()[:16] == digest16, f"{path.name} is damaged"

    # 4. The restarted server stores new work, and the interrupted instance on a re-send.
    fresh = write_copies(tmp_path / "after", 1, source=SOURCE)[0]
    assoc = associate(server.port)
    try:
        assert assoc.send_c_store(fresh).get("Status") == 0x0000
        assert assoc.send_c_store(in_flight_path).get("Status") == 0x0000
    finally:
        assoc.release()
    for path in (fresh, in_flight_path):
        row = Instance.objects.get(sop_instance_uid=sop_of(path))
        assert row.sha256 == dataset_sha256(path)
        assert_complete_instance(root / row.storage_key, row.sop_instance_uid)
        assert dataset_sha256(root / row.storage_key) == row.sha256
    assert Instance.objects.count() == len(set(acknowledged) | {in_flight}) + 1


# --- the storage layer under injected faults ----------------------------------------------------

KEY = "1.2.3/1.2.3.4/1.2.3.4.5.0123456789abcdef.dcm"
GOOD = b"\x00" * 128 + b"DICM" + b"good copy " * 10_000
OTHER = b"\x00" * 128 + b"DICM" + b"later copy " * 10_000


def inject_fault(monkeypatch, fault: str) -> None:
    """Make one step of a put fail the way a full or failing disk would."""
    if fault == "fsync":
        real_fsync = os.fsync

        def fsync(fd):
            if stat.S_ISREG(os.fstat(fd).st_mode):  # the data file, not a folder
                raise OSError(errno.EIO, "injected: I/O error on fsync")
            return real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    elif fault == "short_write":
        real_write = os.write
        calls = {"n": 0}

        def write(fd, data):
            calls["n"] += 1
            if calls["n"] == 1:
                return real_write(fd, bytes(data[:4096]))  # part of the data reaches the disk
            raise OSError(errno.ENOSPC, "injected: no space left on device")

        monkeypatch.setattr(os, "write", write)
    elif fault == "rename":

        def replace(src, dst):
            raise OSError(errno.EIO, "injected: I/O error on rename")

        monkeypatch.setattr(os, "replace", replace)
    else:
        raise ValueError(fault)


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("fault", ["fsync", "short_write", "rename"])
def test_failed_put_leaves_no_file_and_no_temp_file(tmp_path, monkeypatch, fault):
    storage = FileSystemStorage(tmp_path / "store")
    with monkeypatch.context() as patch:
        inject_fault(patch, fault)
        with pytest.raises(OSError, match="injected"):
            storage.put(KEY, GOOD)
    assert not storage.exists(KEY)
    assert not storage.path(KEY).exists()
    assert temp_files(storage.root) == []


@pytest.mark.parametrize("fault", ["fsync", "short_write", "rename"])
def test_failed_put_keeps_the_good_copy_already_at_the_key(tmp_path, monkeypatch, fault):
    storage = FileSystemStorage(tmp_path / "store")
    storage.put(KEY, GOOD)
    with monkeypatch.context() as patch:
        inject_fault(patch, fault)
        with pytest.raises(OSError, match="injected"):
            storage.put(KEY, OTHER)
    with storage.open(KEY) as fh:
        assert fh.read() == GOOD
    assert temp_files(storage.root) == []
    # And the key still takes a new copy once the fault is gone.
    storage.put(KEY, OTHER)
    assert storage.path(KEY).read_bytes() == OTHER
    assert temp_files(storage.root) == []


def test_writes_start_in_the_temp_folder_and_start_up_empties_it(tmp_path, monkeypatch):
    """A write is a temp file in the one temp folder until its rename, so start-up clears
    what a crash left by listing that folder; stored files, and names that merely contain
    the prefix, stay."""
    storage = FileSystemStorage(tmp_path / "store")
    seen_while_writing = []
    real_fsync = os.fsync

    def fsync_and_look(fd: int) -> None:
        seen_while_writing.append(sorted(os.listdir(storage.temp_folder)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_and_look)
    storage.put(KEY, GOOD)
    monkeypatch.undo()
    # The data's fsync saw it there (the folders' fsyncs, before and after, saw nothing).
    assert [names for names in seen_while_writing if names] == [[seen_while_writing[1][0]]]
    assert seen_while_writing[1][0].startswith(TEMP_PREFIX)
    assert os.listdir(storage.temp_folder) == []
    strays = [storage.temp_folder / f"{TEMP_PREFIX}a1b2", storage.temp_folder / f"{TEMP_PREFIX}c3"]
    for stray in strays:
        stray.write_bytes(b"partial")
    kept = storage.path(KEY).parent / f"note{TEMP_PREFIX}x"
    kept.write_bytes(b"not a temp file")
    assert storage.remove_stray_temp_files() == 2
    assert temp_files(storage.root) == []
    assert storage.path(KEY).read_bytes() == GOOD and kept.exists()
    assert storage.remove_stray_temp_files() == 0
