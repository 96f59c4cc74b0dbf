"""A bare pynetdicom C-STORE SCP: the floor of bench/ingest.py, not part of ReadingRoom.

Why: the ingest target (ReadingRoom at least as fast as Orthanc) was set on the premise that
"a bare pynetdicom SCP that just writes files reaches roughly Orthanc's rate". This is that
SCP, measured in the same run, so the benchmark shows how far the library itself is from
Orthanc and how much ReadingRoom's own work (parse, hash, index, its durability) adds on top.

What it does per C-STORE, and nothing more: write the received data set as a Part 10 file
(pynetdicom's own `encoded_dataset`) with one fsync, as Orthanc 1.10 does (one fdatasync of
the file written in place; strace, 2026-12-07). Stock pynetdicom: no ReadingRoom transport
changes. One process, one thread per association, as pynetdicom serves by default.

    python bench/bare_scp.py PORT FOLDER [--max-pdu 131072]
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

AE_TITLE = "BARE"
TRANSFER_SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--max-pdu", type=int, default=131072)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)

    def on_store(event: evt.Event) -> int:
        # The SOP Instance UID names the file: the benchmark sends fresh, valid UIDs only.
        path = args.folder / f"{event.request.AffectedSOPInstanceUID}.dcm"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, event.encoded_dataset(include_meta=True))
            os.fsync(fd)
        finally:
            os.close(fd)
        return 0x0000

    ae = AE(ae_title=AE_TITLE)
    ae.maximum_pdu_size = args.max_pdu
    ae.maximum_associations = 16
    ae.add_supported_context(Verification)
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, TRANSFER_SYNTAXES)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    handlers = [(evt.EVT_C_STORE, on_store)]
    ae.start_server(("127.0.0.1", args.port), block=True, evt_handlers=handlers)


if __name__ == "__main__":
    main()
