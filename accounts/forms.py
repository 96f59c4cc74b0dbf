"""Forms of the sign-in pages; thin, the rules live in mfa.py and tokens.py."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.forms import PasswordChangeForm
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


class CheckedPasswordChangeForm(PasswordChangeForm):
    """The current password is checked by `authenticate()`, as at sign-in: a wrong one is a
    failed sign-in (audited, counted by django-axes), and a locked username is refused even
    the right one, so a borrowed session cannot guess the password without limit."""

    def __init__(self, user, *args, request=None, **kwargs) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request

    def clean_old_password(self) -> str:
        old_password = self.cleaned_data["old_password"]
        checked = authenticate(
            self.request, username=self.user.get_username(), password=old_password
        )
        if checked is None or checked.pk != self.user.pk:
            raise forms.ValidationError(
                self.error_messages["password_incorrect"], code="password_incorrect"
            )
        return old_password
