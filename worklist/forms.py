from __future__ import annotations

from django import forms

from .models import NotificationPreference


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = ["email_stat", "email_breach", "email_near_breach"]
