"""Organisation admins manage their own organisation: members and their roles, and (for a
sending facility) the DICOM nodes allowed to send for it. Never another organisation's.

Platform admins use the Django admin for everything; these pages are for org admins.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from audit.models import Action, Outcome
from audit.services import record

from .models import ROLE_ORG_KINDS, DicomNode, Membership, Organization, Role
from .policy import active_memberships

# A change to one's own access takes a second administrator (an org admin is not by that a
# radiologist, and a reader role would let them sign reports).
SELF_GRANT_REFUSED = "You cannot grant a role to your own account; ask another administrator."


def administered_organizations(user) -> list[Organization]:
    return [m.organization for m in active_memberships(user) if m.role == Role.ORG_ADMIN]


def _organization_or_404(request: HttpRequest, slug: str) -> Organization:
    for org in administered_organizations(request.user):
        if org.slug == slug:
            return org
    record(
        request,
        Action.ACCESS_DENIED,
        Outcome.DENIED,
        object_type="organization",
        object_id=slug[:64],
        detail={"page": "orgadmin"},
    )
    raise Http404("No such organisation")


def _form_errors(request: HttpRequest, form: forms.BaseForm) -> None:
    messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))


def _changed(request: HttpRequest, obj, change: str) -> None:
    record(request, Action.ADMIN_CHANGE, obj=obj, detail={"change": change})


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=[])

    def __init__(self, org: Organization, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.org = org
        # An org admin may grant roles that live in this kind of organisation, except admin.
        self.fields["role"].choices = [
            (role.value, role.label)
            for role in Role
            if org.kind in ROLE_ORG_KINDS[role] and role != Role.ADMIN
        ]

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if not get_user_model().objects.filter(username=username, is_active=True).exists():
            raise ValidationError("No active user with that username.")
        return username


class NodeForm(forms.ModelForm):
    class Meta:
        model = DicomNode
        fields = ["ae_title", "host", "port", "description"]


@login_required
def index(request: HttpRequest) -> HttpResponse:
    orgs = administered_organizations(request.user)
    if not orgs:
        raise Http404("No organisation to administer")
    if len(orgs) == 1:
        return redirect("orgadmin:organization", slug=orgs[0].slug)
    return render(request, "orgadmin/index.html", {"orgs": orgs})


@login_required
def organization(request: HttpRequest, slug: str) -> HttpResponse:
    org = _organization_or_404(request, slug)
    members = (
        Membership.objects.filter(organization=org)
        .select_related("user")
        .order_by("user__username", "role")
    )
    return render(
        request,
        "orgadmin/organization.html",
        {
            "org": org,
            "members": members,
            "member_form": MemberForm(org),
            "nodes": org.nodes.all() if org.kind == Organization.Kind.SENDING_FACILITY else None,
            "node_form": NodeForm(),
        },
    )


@login_required
@require_POST
def add_member(request: HttpRequest, slug: str) -> HttpResponse:
    org = _organization_or_404(request, slug)
    form = MemberForm(org, request.POST)
    if form.is_valid():
        user = get_user_model().objects.get(username=form.cleaned_data["username"])
        if user.pk == request.user.pk:
            messages.error(request, SELF_GRANT_REFUSED)
            return redirect("orgadmin:organization", slug=org.slug)
        membership, created = Membership.objects.get_or_create(
            user=user, organization=org, role=form.cleaned_data["role"]
        )
        if not created and not membership.active:
            membership.active = True
            membership.save(update_fields=["active"])
        _changed(request, membership, f"grant {membership.role}")
        messages.success(request, f"{user.username} is now {membership.get_role_display()}.")
    else:
        _form_errors(request, form)
    return redirect("orgadmin:organization", slug=org.slug)


@login_required
@require_POST
def set_member_active(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    org = _organization_or_404(request, slug)
    membership = Membership.objects.filter(pk=membership_id, organization=org).first()
    if membership is None:
        raise Http404("No such member")
    activate = request.POST.get("active") == "1"
    if membership.user_id == request.user.pk and membership.role == Role.ORG_ADMIN:
        messages.error(request, "You cannot remove your own admin role.")
    elif membership.user_id == request.user.pk and activate:
        messages.error(request, SELF_GRANT_REFUSED)
    else:
        membership.active = activate
        membership.save(update_fields=["active"])
        _changed(request, membership, "activate" if membership.active else "deactivate")
    return redirect("orgadmin:organization", slug=org.slug)


@login_required
@require_POST
def add_node(request: HttpRequest, slug: str) -> HttpResponse:
    org = _organization_or_404(request, slug)
    if org.kind != Organization.Kind.SENDING_FACILITY:
        raise Http404("Only sending facilities have DICOM nodes")
    form = NodeForm(request.POST, instance=DicomNode(organization=org))
    if form.is_valid():
        try:
            with transaction.atomic():
                form.save()
            _changed(request, form.instance, "add DICOM node")
            messages.success(request, f"DICOM node {form.instance.ae_title} added.")
        except IntegrityError:
            messages.error(request, "That AE title is already in use.")
    else:
        _form_errors(request, form)
    return redirect("orgadmin:organization", slug=org.slug)


@login_required
@require_POST
def set_node_enabled(request: HttpRequest, slug: str, node_id: int) -> HttpResponse:
    org = _organization_or_404(request, slug)
    node = DicomNode.objects.filter(pk=node_id, organization=org).first()
    if node is None:
        raise Http404("No such node")
    node.enabled = request.POST.get("enabled") == "1"
    node.save(update_fields=["enabled"])
    _changed(request, node, "enable" if node.enabled else "disable")
    return redirect("orgadmin:organization", slug=org.slug)
