"""Association negotiation time: ReadingRoom's SCP against Orthanc, in the same run.

Every modality send starts with an association; ReadingRoom accepts every storage SOP class
x 20 transfer syntaxes, which pynetdicom makes expensive per association. This measures the
median time from A-ASSOCIATE-RQ to an established association (pynetdicom SCU, loopback,
TCP_NODELAY on both sides) with one Verification context and with 100 storage contexts.

    .venv/bin/python bench/associate.py [--count 50]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pynetdicom import AE, StoragePresentationContexts
from pynetdicom.sop_class import Verification

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import CALLING_AE, Children, start_orthanc, start_readingroom  # noqa: E402

CASES = {
    "1 context (Verification)": [Verification],
    "100 storage contexts": [c.abstract_syntax for c in StoragePresentationContexts[:100]],
}


def median_ms(port: int, called: str, contexts: list, count: int) -> float:
    times = []
    for _ in range(count):
        ae = AE(ae_title=CALLING_AE)
        for context in contexts:
            ae.add_requested_context(context)
        start = time.perf_counter()
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        elapsed = time.perf_counter() - start
        if not assoc.is_established:
            raise SystemExit(f"{called} refused the association")
        assoc.release()
        times.append(elapsed * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="readingroom-assoc-"))
    children = Children()
    try:
        readingroom, _ = start_readingroom(children, base, None, workers=1)
        orthanc = start_orthanc(children, base)
        for case, contexts in CASES.items():
            ours = median_ms(readingroom.port, readingroom.called_ae, contexts, args.count)
            theirs = median_ms(orthanc.port, orthanc.called_ae, contexts, args.count)
            print(
                f"{case:26s} readingroom {ours:6.1f} ms  orthanc {theirs:6.1f} ms  "
                f"ratio (time) {ours / theirs:.2f}  (median of {args.count})"
            )
    finally:
        children.stop_all()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
