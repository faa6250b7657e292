"""Talking to a flywheel server for the commands that take ``--server URL --api-key KEY``."""

from __future__ import annotations

from typing import Any


def error_text(body: Any, fallback: str) -> str:
    """The message of an API error body: ``detail`` as a string, or one ``loc: msg`` line per item of a 422."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail:
        lines = []
        for item in detail:
            if not isinstance(item, dict):
                lines.append(str(item))
                continue
            loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
            lines.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
        return "; ".join(lines)
    return fallback


class RemoteClient:
    """HTTP calls to one server; an error answer becomes the matching :class:`flywheel.errors.FlywheelError`."""

    def __init__(self, url: str, api_key: str | None) -> None:
        import httpx

        from flywheel.config import redact_url

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)  # the URL may carry a password or a token
        self.client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The parsed JSON answer of ``method path``."""
        from flywheel.errors import ConfigError, ConflictError, FlywheelError, NotFoundError

        try:
            response = self.client.request(method, path, **kwargs)
        except Exception as exc:
            reason = str(exc).replace(self.url, self.shown_url)
            raise FlywheelError(f"Cannot reach the flywheel server at {self.shown_url}: {reason}") from None
        if response.status_code >= 400:
            try:
                detail = error_text(response.json(), response.text)
            except ValueError:
                detail = response.text
            error = {404: NotFoundError, 409: ConflictError, 401: ConfigError, 422: ConfigError}.get(
                response.status_code, FlywheelError
            )
            raise error(detail if response.status_code != 401 else f"{detail} (set FLYWHEEL_API_KEY)")
        try:
            return response.json()
        except ValueError:
            raise FlywheelError(
                f"{self.shown_url} answered {method} {path} with HTTP {response.status_code} but not JSON "
                f"({response.headers.get('content-type', 'no content type')}): it is not a flywheel server, "
                "or not its base URL. Check --server / FLYWHEEL_SERVER."
            ) from None
