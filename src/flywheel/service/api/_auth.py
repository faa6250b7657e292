"""API-key authentication for ``/api`` routes (``Authorization: Bearer KEY``) when keys are configured."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from fastapi import HTTPException, Request, status
from pydantic import SecretStr


def make_auth_dependency(keys: Sequence[SecretStr]):  # type: ignore[no-untyped-def]
    """A dependency that accepts any of ``keys``; with no keys configured every request passes."""
    secrets = [k.get_secret_value().encode() for k in keys]

    async def require_api_key(request: Request) -> None:
        if not secrets:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Missing API key: send 'Authorization: Bearer <key>' (keys are set in FLYWHEEL_API_KEYS).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        given = token.strip().encode()
        if not any(hmac.compare_digest(given, s) for s in secrets):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Invalid API key.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_api_key
