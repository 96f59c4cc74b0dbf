"""The privacy officer's filter: by patient, user, action, outcome and time."""

from __future__ import annotations

from django import forms
from django.db.models import QuerySet

from .models import Action, Outcome


class AuditFilterForm(forms.Form):
    patient_id = forms.CharField(label="Patient ID", max_length=64, required=False)
    username = forms.CharField(label="User", max_length=150, required=False)
    study_uid = forms.CharField(label="Study UID", max_length=64, required=False)
    action = forms.ChoiceField(choices=[("", "any action"), *Action.choices], required=False)
    outcome = forms.ChoiceField(choices=[("", "any outcome"), *Outcome.choices], required=False)
    since = forms.DateTimeField(
        label="From", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        label="Until", required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self) -> dict:
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” is after “Until”.")
        return data

    def filter(self, events: QuerySet) -> QuerySet:
        """Exact matches (indexed): a privacy officer asks about one MRN, one user."""
        data = self.cleaned_data
        if data.get("patient_id"):
            events = events.filter(patient_id=data["patient_id"].strip())
        if data.get("username"):
            events = events.filter(username=data["username"].strip())
        if data.get("study_uid"):
            events = events.filter(study_uid=data["study_uid"].strip())
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("outcome"):
            events = events.filter(outcome=data["outcome"])
        if data.get("since"):
            events = events.filter(time__gte=data["since"])
        if data.get("until"):
            events = events.filter(time__lte=data["until"])
        return events

    def used_filters(self) -> dict[str, str]:
        """The filters as given, for the audit event that records this look at the trail."""
        if not self.is_valid():
            return {}
        return {k: str(v) for k, v in self.cleaned_data.items() if v not in (None, "")}
