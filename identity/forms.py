"""What the steward's forms may carry, checked before any of it reaches a query or a row.

Why: PostgreSQL refuses NUL in text, so a NUL in an MRN, a slug or a reason (a browser
sends whatever it is given) became a DataError and a 500. Django's CharField refuses NUL
(ProhibitNullCharactersValidator) and says so; the views answer 400 with these messages.
"""

from __future__ import annotations

from django import forms


class ReasonForm(forms.Form):
    """Why a steward changed a grouping (unlink, unmerge); the service keeps 200 characters."""

    reason = forms.CharField(required=False)


class LinkForm(ReasonForm):
    """Link the record with this MRN at the organisation with this slug (the person page)."""

    patient_id = forms.CharField(max_length=64)
    organization = forms.SlugField(max_length=60)
