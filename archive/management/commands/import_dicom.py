"""Import DICOM Part 10 files from folders, as if a sending facility had sent them."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from accounts.models import DicomNode, Organization
from archive.importer import import_files, iter_files
from archive.services import IngestSource


class Command(BaseCommand):
    help = "Walk folders and ingest every DICOM file through the archive's ingest service."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--organization", help="slug of the sending organisation")
        who.add_argument("--ae-title", help="calling AE title of an enabled DICOM node")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, paths, organization=None, ae_title=None, no_progress=False, **kw):
        source = _source(organization, ae_title)
        files = list(iter_files(paths))
        if not files:
            raise CommandError("no files found under the given paths")
        with tqdm(total=len(files), unit="file", disable=no_progress) as bar:
            summary = import_files(files, source, progress=bar.update)
        counts = summary.counts
        self.stdout.write(
            f"stored {counts['stored']}, duplicate {counts['duplicate']}, "
            f"ignored {counts['ignored']}, rejected {counts['rejected']}"
        )
        for path, reason in summary.rejected:
            self.stdout.write(f"  rejected {path}: {reason}")


def _source(slug: str | None, ae_title: str | None) -> IngestSource:
    if ae_title:
        node = (
            DicomNode.objects.select_related("organization")
            .filter(ae_title=ae_title, enabled=True)
            .first()
        )
        if node is None:
            raise CommandError(f"no enabled DICOM node with AE title {ae_title!r}")
        return IngestSource(node.organization, f"import:{node.ae_title}", node)
    org = Organization.objects.filter(slug=slug, kind=Organization.Kind.SENDING_FACILITY).first()
    if org is None:
        raise CommandError(f"no sending facility with slug {slug!r}")
    return IngestSource(org, f"import:{org.slug}")
