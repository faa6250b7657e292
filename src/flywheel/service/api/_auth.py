"""API-key authentication (``Authorization: Bearer KEY``) when keys are configured (``FLYWHEEL_API_KEYS``).

The dependency leaves the accepted key's name (``NAME:KEY``; None for an unnamed key or when no keys are configured)
in ``request.state.api_key_name``: the gateway logs it as the caller's ``client_id``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence

from fastapi import HTTPException, Request, status

from flywheel.config import ApiKey

MISSING_KEY = "Missing API key: send 'Authorization: Bearer <key>' (keys are set in FLYWHEEL_API_KEYS)."
INVALID_KEY = "Invalid API key."


class Unauthorized(HTTPException):
    """401 from the key check; ``code`` says which (``missing_api_key`` or ``invalid_api_key``)."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})
        self.code = code


def make_auth_dependency(keys: Sequence[ApiKey]) -> Callable[[Request], Awaitable[None]]:
    """A dependency that accepts any of ``keys``; with no keys configured every request passes."""
    secrets = [(k.secret.get_secret_value().encode(), k.name) for k in keys]

    async def require_api_key(request: Request) -> None:
        request.state.api_key_name = None
        if not secrets:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(MISSING_KEY, "missing_api_key")
        given = token.strip().encode()
        # Every key is compared (no early exit), so the time taken does not tell which key came close.
        matched = [name for secret, name in secrets if hmac.compare_digest(given, secret)]
        if not matched:
            raise Unauthorized(INVALID_KEY, "invalid_api_key")
        request.state.api_key_name = matched[0]

    return require_api_key
