"""Who is calling: a bearer token (scoped read or write) or a logged-in staff session.

Nothing under /api/ answers without one of them. A view may also let in the session of a
user who is not staff (`api_view(..., user_sessions=True)`): for views that serve the
caller's own rows alone (the notifications inbox, reminders), so that a logged-in user
reads their own without a token. Every other view refuses such a session (403). A request that carries an Authorization
header is judged by it alone: a bad token is a 401 even when a session cookie came along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

from tasks.api import tokens
from tasks.api.errors import ApiError
from tasks.api.models import ApiToken

READ, WRITE = ApiToken.READ, ApiToken.WRITE


@dataclass(frozen=True)
class Principal:
    scope: str
    token: ApiToken | None = None
    user: Any = None
    #: A non-staff user's session (let in by `user_sessions=True`): it acts for that user
    #: alone, so the view serves their own rows only.
    user_session: bool = False

    @property
    def session(self) -> bool:
        return self.token is None

    @property
    def user_id(self) -> int | None:
        """Whom the caller acts for: a token's owner (None for a service's token), or the
        session's user. Apps scope rows by it (catalog reports, the inbox)."""
        return self.token.user_id if self.token is not None else self.user.pk

    def allows(self, scope: str) -> bool:
        return self.scope == WRITE or scope == READ

    def __str__(self) -> str:
        return f"token {self.token.name}" if self.token else f"user {self.user}"


def authenticate(request: HttpRequest, user_sessions: bool = False) -> Principal:
    """The caller, or ApiError 401 (no or bad credentials) / 403 (not staff, unless
    `user_sessions` lets an active user's session in)."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise ApiError(401, "invalid_authorization", "expected Authorization: Bearer <token>")
        token = tokens.lookup(credentials)  # cached: see tasks.api.tokens
        if token is None:
            raise ApiError(401, "invalid_token", "the token is not valid")
        if token.revoked:
            raise ApiError(401, "token_revoked", "the token was revoked")
        return Principal(scope=token.scope, token=token)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        if user.is_active and not user.is_staff and user_sessions:
            return Principal(scope=WRITE, user=user, user_session=True)
        if not (user.is_active and user.is_staff):
            raise ApiError(403, "staff_required", "the API is for staff users and API tokens")
        return Principal(scope=WRITE, user=user)
    raise ApiError(
        401, "not_authenticated", "send Authorization: Bearer <token> or log in as staff"
    )


class _CsrfCheck(CsrfViewMiddleware):
    """Django's own CSRF check, answering with a reason instead of an HTML page."""

    def _reject(self, request: HttpRequest, reason: str) -> str:  # type: ignore[override]
        return reason


def check_csrf(request: HttpRequest, principal: Principal) -> None:
    """A session is a cookie the browser sends by itself: its unsafe requests need the CSRF
    token, as Django's forms do. A bearer token is never sent by itself: no CSRF check."""
    if not principal.session or request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    check = _CsrfCheck(lambda req: None)
    check.process_request(request)
    reason = check.process_view(request, None, (), {})
    if reason is not None:
        raise ApiError(403, "csrf_failed", f"CSRF check failed: {reason}")
