"""API keys with three scopes: ``inference`` (embed, classify, read models), ``train`` and ``admin``.

``DIVA_API_KEYS`` holds ``key`` (inference), ``key:train`` (inference + train + export) or
``key:admin`` (all of that, and it sees every owner's datasets, jobs, models and heads, and may
apply retention), comma separated. No keys configured means the service is open (local use,
tests) and every caller sees everything.
"""

from __future__ import annotations

import hmac
from enum import Enum

from service.core.errors import ApiError


class Scope(str, Enum):
    INFERENCE = "inference"
    TRAIN = "train"
    ADMIN = "admin"


_IMPLIED = {
    Scope.INFERENCE: {Scope.INFERENCE},
    Scope.TRAIN: {Scope.INFERENCE, Scope.TRAIN},
    Scope.ADMIN: {Scope.INFERENCE, Scope.TRAIN, Scope.ADMIN},
}


def parse_api_keys(entries: list[str]) -> dict[str, set[Scope]]:
    """``["a", "b:train"]`` -> ``{"a": {inference}, "b": {inference, train}}``; bad scopes raise."""
    keys: dict[str, set[Scope]] = {}
    for entry in entries:
        key, _, scope = entry.partition(":")
        key = key.strip()
        scope = scope.strip() or Scope.INFERENCE.value
        if not key:
            raise ValueError("empty API key in DIVA_API_KEYS")
        if scope not in {s.value for s in Scope}:
            raise ValueError(f"unknown scope {scope!r} for an API key: use 'key', 'key:train' or 'key:admin'")
        keys.setdefault(key, set()).update(_IMPLIED[Scope(scope)])
    return keys


def check_key(keys: dict[str, set[Scope]], presented: str | None, needed: Scope) -> str | None:
    """Return the matching key (None when auth is off); raise 401 / 403 as :class:`ApiError`."""
    if not keys:
        return None
    if not presented:
        raise ApiError(
            401,
            "authentication_error",
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    for key, scopes in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            if needed not in scopes:
                raise ApiError(403, "permission_error", f"this API key lacks the '{needed.value}' scope")
            return key
    raise ApiError(401, "authentication_error", "invalid API key", headers={"WWW-Authenticate": "Bearer"})
