"""The FastAPI application: ``create_app(settings)``."""

from flywheel.service.api._app import create_app

__all__ = ["create_app"]
