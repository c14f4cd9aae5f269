"""`manage.py api_token create NAME --scope read|write`, `list`, `revoke NAME_OR_PREFIX`."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError
from django.db.models import Q

from tasks.api.models import TOKEN_PREFIX, ApiToken


class Command(BaseCommand):
    help = "Create, list and revoke HTTP API tokens (only a hash of each is stored)."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="create a token and print it, once")
        create.add_argument("name", help="who or what uses it")
        create.add_argument("--scope", choices=[ApiToken.READ, ApiToken.WRITE], default="read",
                            help="read: status, metrics, events; write: also change jobs")  # fmt: skip
        create.add_argument("--user", help="the username it acts for (apps scope rows by it)")
        listing = sub.add_parser("list", help="every token: name, prefix, scope, last use")
        listing.add_argument("--json", dest="as_json", action="store_true", help="JSON output")
        revoke = sub.add_parser("revoke", help="revoke a token by its name or prefix")
        revoke.add_argument(
            "token", help=f"its name, or its prefix (the part after {TOKEN_PREFIX}_)"
        )

    def handle(self, *args, action: str, **options) -> None:
        getattr(self, f"_{action}")(**options)

    def _create(self, name: str, scope: str, user: str | None = None, **options) -> None:
        owner = None
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user {user!r}")
        try:
            token, raw = ApiToken.issue(name, scope, user=owner)
        except IntegrityError:
            raise CommandError(f"a token named {name!r} exists; pick another name") from None
        self.stderr.write(f"Created {scope} token {token.name!r}. Copy it now: it is not stored.")
        self.stdout.write(raw)

    def _list(self, as_json: bool = False, **options) -> None:
        rows = [
            {"name": t.name, "prefix": t.prefix, "scope": t.scope,
             "createdAt": t.created_at.isoformat(),
             "lastUsedAt": t.last_used_at.isoformat() if t.last_used_at else None,
             "revokedAt": t.revoked_at.isoformat() if t.revoked_at else None}
            for t in ApiToken.objects.order_by("name")
        ]  # fmt: skip
        if as_json:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        from tasks.management.cli import table

        self.stdout.write(table(
            ["name", "token", "scope", "created", "last used", "revoked"],
            [[r["name"], f"{TOKEN_PREFIX}_{r['prefix']}_…", r["scope"], r["createdAt"][:19],
              (r["lastUsedAt"] or "never")[:19], (r["revokedAt"] or "")[:19]] for r in rows],
        ))  # fmt: skip

    def _revoke(self, token: str, **options) -> None:
        key = token.removeprefix(f"{TOKEN_PREFIX}_").split("_")[0]
        matches = list(ApiToken.objects.filter(Q(name=token) | Q(prefix=key)))
        if not matches:
            raise CommandError(f"no token named or prefixed {token!r}", returncode=3)
        if len(matches) > 1:
            raise CommandError(f"{token!r} matches several tokens; give the prefix")
        found = matches[0]
        if found.revoked:
            self.stdout.write(f"{found.name!r} was already revoked")
            return
        found.revoke()
        self.stdout.write(f"revoked {found.name!r} ({TOKEN_PREFIX}_{found.prefix}_…)")
