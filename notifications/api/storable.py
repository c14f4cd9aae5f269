"""What PostgreSQL cannot store, refused at the door: a NUL character or an unpaired UTF-16
surrogate anywhere in a body's strings (keys of JSON objects too) is a 400 naming the
field, not a DataError (a 500) at the INSERT. tasks.archive escapes such values instead,
because an event must be archived whatever it holds; a client can send its request again."""

from __future__ import annotations

import re
from typing import Any

from tasks import ApiError

#: NUL, and a lone surrogate (json.loads joins a valid pair into one character).
_REFUSED = re.compile("[\x00\ud800-\udfff]")
MESSAGE = "must not contain NUL characters or unpaired surrogates"


def unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _REFUSED.search(value) is not None
    if isinstance(value, dict):
        return any(unstorable(k) or unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(unstorable(v) for v in value)
    return False


def refuse_unstorable(fields: dict[str, Any], code: str = "invalid_request") -> None:
    """ApiError 400 `code` naming each field (a body's, or a query's) whose value holds one."""
    errors = [{"field": str(k), "message": MESSAGE} for k, v in fields.items()
              if unstorable(k) or unstorable(v)]  # fmt: skip
    if errors:
        detail = "; ".join(f"{e['field']!r}: {e['message']}" for e in errors)
        raise ApiError(400, code, detail, fields=errors)
