"""Real peers for the interoperability tests: an Orthanc (Debian's 1.10 with its DICOMweb and
GDCM plugins) started on free loopback ports for the whole session, and dicomweb-client
instances that talk to it and to ReadingRoom's live server.

Orthanc has no bind-address option: it listens on every interface, so it runs with
RemoteAccessAllowed false (it refuses any peer that is not localhost), its DICOM listener off,
and is only ever addressed as 127.0.0.1 (shared/PEERS.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, wait_for

ORTHANC = Path("/usr/sbin/Orthanc")
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")
PLUGINS = ("libOrthancDicomWeb.so", "libOrthancGdcm.so")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class Orthanc:
    pid: int
    http_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory) -> Iterator[Orthanc]:
    """A private Orthanc with DICOMweb at /dicom-web/, stopped by its pid at session end."""
    if not ORTHANC.is_file():
        pytest.fail(
            f"{ORTHANC} is missing: the interop tests need Orthanc "
            "(apt-get install orthanc orthanc-dicomweb orthanc-gdcm)"
        )
    missing = [name for name in PLUGINS if not (ORTHANC_PLUGINS / name).exists()]
    if missing:
        pytest.fail(
            f"Orthanc plugins {missing} are missing from {ORTHANC_PLUGINS} "
            "(apt-get install orthanc-dicomweb orthanc-gdcm)"
        )
    folder = tmp_path_factory.mktemp("orthanc")
    http_port = free_port()
    config = {
        "Name": "readingroom-interop",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpPort": http_port,
        # No DIMSE here: QIDO/STOW only. The port is still a free one, should it be enabled.
        "DicomServerEnabled": False,
        "DicomAet": "ORTHANC",
        "DicomPort": free_port(),
        "DicomCheckCalledAet": False,
        "Plugins": [str(ORTHANC_PLUGINS / name) for name in PLUGINS],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ORTHANC), str(config_path)],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
    server = Orthanc(pid=proc.pid, http_port=http_port, log=log)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"Orthanc exited with {proc.returncode}:\n{_tail(log)}")
            return _answers(f"{server.dicomweb_url}/studies")

        try:
            wait_for(up, timeout=START_TIMEOUT, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"Orthanc did not come up: {exc}\n{_tail(log)}") from None
        yield server
    finally:
        proc.terminate()  # SIGTERM to this pid only: Orthanc shuts down cleanly on it
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


class LiteralQuerySession(requests.Session):
    """A requests session that puts `*` and `?` into the query string literally.

    dicomweb-client percent-encodes every query value (quote_plus), so a wildcard PatientID
    `IOP-*` goes out as `IOP-%2A`. Orthanc 1.10's QIDO-RS does not percent-decode query values
    (shared/PEERS.md: the same reason a PatientName with `^` finds nothing), so it would match
    the three characters `%2A` literally and silently answer nothing. RFC 3986 lets `*` and `?`
    stand unescaped in a query, so sending them literally is an equally valid request; it is
    used for Orthanc only, while ReadingRoom gets dicomweb-client's encoding unchanged. (A
    comma, `%2C`, needs no help: the DICOMweb plugin accepts it encoded.)
    """

    LITERAL = {"%2A": "*", "%2a": "*", "%3F": "?", "%3f": "?"}

    def send(self, request, **kwargs):
        base, sep, query = request.url.partition("?")
        if sep:
            for encoded, char in self.LITERAL.items():
                query = query.replace(encoded, char)
            request.url = f"{base}?{query}"
        return super().send(request, **kwargs)


@pytest.fixture(scope="session")
def orthanc_client(orthanc):
    from dicomweb_client.api import DICOMwebClient

    return DICOMwebClient(orthanc.dicomweb_url, session=LiteralQuerySession())
