"""Forms of the sign-in pages; thin, the rules live in mfa.py and tokens.py."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
    )


class TokenForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="What uses it, e.g. a script")
    days = forms.IntegerField(label="Valid for (days)", min_value=1)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Limits come from settings at request time (tests and deployments change them).
        days = self.fields["days"]
        days.initial = settings.API_TOKEN_DAYS
        days.widget.attrs["max"] = settings.API_TOKEN_MAX_DAYS
        days.validators.append(MaxValueValidator(settings.API_TOKEN_MAX_DAYS))
