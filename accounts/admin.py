from django.contrib import admin

from .models import ApiToken, DicomNode, Membership, Organization, ReadingAgreement


class DicomNodeInline(admin.TabularInline):
    model = DicomNode
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "us_state"]
    list_filter = ["kind", "us_state"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [DicomNodeInline]


@admin.register(DicomNode)
class DicomNodeAdmin(admin.ModelAdmin):
    list_display = ["ae_title", "organization", "host", "port", "enabled"]
    list_filter = ["enabled"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "active"]
    list_filter = ["role", "organization", "active"]
    filter_horizontal = ["credentialed_facilities"]


@admin.register(ReadingAgreement)
class ReadingAgreementAdmin(admin.ModelAdmin):
    list_display = ["reading_group", "sending_facility", "active"]
    list_filter = ["active"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by their owner (account page) or `manage.py create_api_token`, so
    the secret is shown once to the right person; admins can see and revoke them."""

    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    readonly_fields = ["user", "prefix", "token_hash", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        """One by one through revoke_token, so each ends its image grants (token_revoked) and
        is audited as the owner's own revocation is."""
        from .auditing import record
        from .tokens import revoke_token

        count = 0
        for token in queryset.filter(revoked_at__isnull=True).select_related("user"):
            if revoke_token(token):
                count += 1
                detail = {"token": token.prefix, "owner": token.user.username}
                record(request, "token.revoke", user=request.user, obj=token, detail=detail)
        self.message_user(request, f"{count} token(s) revoked.")
