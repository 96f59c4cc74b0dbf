"""Folder import: Part 10 files from disk through the same ingest service as C-STORE."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .arrivals import record_arrivals
from .dicomfile import DicomFileError, split_part10
from .models import StudyArrival
from .services import IngestOutcome, IngestSource, ingest_instance


@dataclass
class ImportSummary:
    counts: Counter = field(default_factory=Counter)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def add(self, path: Path, outcome: IngestOutcome) -> None:
        bucket = "stored" if outcome.code in ("stored", "new_version") else outcome.code
        if not outcome.accepted:
            bucket = "rejected"
            self.rejected.append((str(path), outcome.message))
        self.counts[bucket] += 1


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file():
            yield path


def import_files(
    files: Iterable[Path], source: IngestSource, progress: Callable[[], None] | None = None
) -> ImportSummary:
    summary = ImportSummary()
    studies: set[int] = set()
    for path in files:
        try:
            ts_uid, dataset = split_part10(path.read_bytes())
            outcome = ingest_instance(dataset, ts_uid, source)
        except DicomFileError as exc:
            outcome = IngestOutcome(exc.code, exc.message)
        except OSError as exc:
            outcome = IngestOutcome("unreadable", f"cannot read file: {exc.strerror}")
        summary.add(path, outcome)
        if outcome.accepted and outcome.study_id:
            studies.add(outcome.study_id)
        if progress:
            progress()
    record_arrivals(studies, StudyArrival.Reason.IMPORT)
    return summary
