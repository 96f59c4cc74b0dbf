"""`manage.py create_api_token USERNAME [--name N] [--days D]`: issue an API token.

The token is printed once, as the last line, so scripts can take it with `tail -n 1`; only its
hash is stored.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.auditing import record
from accounts.tokens import issue_token


class Command(BaseCommand):
    help = "Create an API token for a user and print it (last line). Only its hash is stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="what the token is for")
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"lifetime in days (default API_TOKEN_DAYS={settings.API_TOKEN_DAYS}, "
            f"at most API_TOKEN_MAX_DAYS={settings.API_TOKEN_MAX_DAYS})",
        )

    def handle(self, *args, username: str, name: str, days: int | None, **options) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}") from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive")
        try:
            row, token = issue_token(user, name, days)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        record(
            None, "token.create", user=user, obj=row, detail={"token": row.prefix, "via": "command"}
        )
        self.stdout.write(
            f"API token {row.name!r} for {username}, expires {row.expires_at:%Y-%m-%d %H:%M %Z}. "
            "Shown once; send it as 'Authorization: Bearer <token>':"
        )
        self.stdout.write(token)
