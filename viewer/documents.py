"""Documents in a study, made readable: the PDF inside an Encapsulated PDF, and a Structured
Report's content tree as plain nodes for a template (which escapes every value)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from .errors import RenderError, guarded

MAX_DEPTH = 20  # SR trees nest; a hostile file must not recurse without end


class NotADocument(RenderError):
    def __init__(self, message: str) -> None:
        super().__init__("not_a_document", message)


@dataclass
class Node:
    relationship: str
    concept: str
    value_type: str
    value: str
    children: list[Node] = field(default_factory=list)


@guarded
def encapsulated_pdf(ds: Dataset) -> bytes:
    data = ds.get("EncapsulatedDocument")
    media = str(ds.get("MIMETypeOfEncapsulatedDocument", "")).lower()
    if data is None or media not in ("", "application/pdf"):
        raise NotADocument("this object holds no encapsulated PDF")
    content = bytes(data)
    if not content.startswith(b"%PDF-"):
        raise NotADocument("the encapsulated document is not a PDF")
    # Encapsulated Document is padded to even length with a NUL: drop trailing padding.
    return content.rstrip(b"\x00")


def _code(item: Dataset | None) -> str:
    if item is None:
        return ""
    return str(item.get("CodeMeaning", "") or item.get("CodeValue", ""))


def _first(sequence) -> Dataset | None:
    return sequence[0] if sequence else None


def _value(item: Dataset) -> str:
    kind = str(item.get("ValueType", ""))
    if kind == "TEXT":
        return str(item.get("TextValue", ""))
    if kind == "CODE":
        return _code(_first(item.get("ConceptCodeSequence")))
    if kind == "NUM":
        measured = _first(item.get("MeasuredValueSequence"))
        if measured is None:
            return "(no value)"
        unit = _code(_first(measured.get("MeasurementUnitsCodeSequence")))
        return f"{measured.get('NumericValue', '')} {unit}".strip()
    if kind in ("DATE", "TIME", "DATETIME"):
        keyword = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime"}[kind]
        return str(item.get(keyword, ""))
    if kind == "PNAME":
        return str(item.get("PersonName", ""))
    if kind == "UIDREF":
        return str(item.get("UID", ""))
    if kind in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        ref = _first(item.get("ReferencedSOPSequence"))
        return f"reference to {ref.get('ReferencedSOPInstanceUID', '')}" if ref else ""
    return ""


def _nodes(sequence, depth: int) -> list[Node]:
    if depth > MAX_DEPTH:
        return [Node("", "(nesting too deep: not shown)", "", "")]
    return [
        Node(
            relationship=str(item.get("RelationshipType", "")),
            concept=_code(_first(item.get("ConceptNameCodeSequence"))),
            value_type=str(item.get("ValueType", "")),
            value=_value(item),
            children=_nodes(item.get("ContentSequence") or [], depth + 1),
        )
        for item in sequence
    ]


@guarded
def structured_report(ds: Dataset) -> Node:
    """The SR's root container with its content tree."""
    if str(ds.get("ValueType", "")) != "CONTAINER" and "ContentSequence" not in ds:
        raise NotADocument("this object is not a structured report")
    return Node(
        relationship="",
        concept=_code(_first(ds.get("ConceptNameCodeSequence"))) or "Structured report",
        value_type="CONTAINER",
        value="",
        children=_nodes(ds.get("ContentSequence") or [], 1),
    )
