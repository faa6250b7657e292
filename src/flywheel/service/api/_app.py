"""Building the FastAPI application for one :class:`flywheel.config.Settings`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from pydantic import SecretStr

from flywheel import __version__
from flywheel.config import GatewayConfig, Settings
from flywheel.errors import ConfigError
from flywheel.service.api import _jobs, _logs, _quarantine
from flywheel.service.api._auth import make_auth_dependency
from flywheel.service.api._docs import mount_docs
from flywheel.service.api._errors import error_responses, install_error_handlers
from flywheel.service.jobs import JobRequest
from flywheel.service.web import mount_dashboard

#: How long a shutdown waits for running steps to hand their work back.
SHUTDOWN_GRACE_S = 10.0


def create_app(
    settings: Settings,
    *,
    engine: Any = None,
    executor: Any = None,
    backends: Any = None,
) -> FastAPI:
    """The API for ``settings``.

    The store is opened (and migrated) at start-up unless ``engine`` is given. With the in-process executor (the
    embedded default) a job worker thread runs inside the server and picks up unfinished jobs left by a previous
    process; ``executor`` (anything with ``submit(job_id)``) replaces it, ``backends`` replaces the model backends.
    With ``gateway`` configured, ``/v1`` forwards OpenAI requests to the upstream and logs them.
    """
    gateway_config = settings.config.gateway
    gateway_keys = [] if gateway_config is None else _upstream_keys(settings, gateway_config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        if owned:
            from flywheel.store import open_store

            app.state.engine = open_store(settings.database_url)
        else:
            app.state.engine = engine
        own_executor = executor is None
        if own_executor:
            from flywheel.service.workers import start_executor

            app.state.executor = start_executor(settings, app.state.engine, backends=backends)
        else:
            app.state.executor = executor
        if gateway_config is not None:
            from flywheel.service.api._gateway import start_gateway, store_delivery

            app.state.gateway = start_gateway(
                gateway_config,
                gateway_keys,
                store_delivery(app.state.engine),
                spool_dir=settings.home / "spool" / "gateway",
            )
        try:
            yield
        finally:
            if gateway_config is not None:
                await app.state.gateway.aclose(timeout=SHUTDOWN_GRACE_S)
            if own_executor:
                # Running steps stop at their next batch or training step and hand their work back; what is
                # still running after this is released anyway, so a restart resumes it at once.
                app.state.executor.stop(timeout=SHUTDOWN_GRACE_S)
            if owned:
                app.state.engine.dispose()

    app = FastAPI(
        title="flywheel",
        version=__version__,
        description="Turn production LLM logs into evidence that a smaller model can replace the big one.",
        lifespan=lifespan,
        docs_url=None,  # served by mount_docs, with its assets, so that the pages work offline
        redoc_url=None,
    )
    app.state.settings = settings

    install_error_handlers(app, body_fields=frozenset(JobRequest.model_fields))

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    require_api_key = make_auth_dependency(settings.api_keys)
    auth = [Depends(require_api_key)]
    for router in (_logs.router, _jobs.router, _quarantine.router):
        app.include_router(router, prefix="/api", dependencies=auth, responses=error_responses(401))
    if gateway_config is not None:
        from flywheel.service.api._gateway import mount_gateway

        # The same flywheel keys as /api; the upstream's key is the gateway's own and never the caller's.
        mount_gateway(app, require_api_key)
    mount_docs(app)
    mount_dashboard(app)  # public: the page asks for the API key when /api answers 401
    return app


def _upstream_keys(settings: Settings, config: GatewayConfig) -> list[SecretStr | None]:
    """The key of the gateway's default upstream, then of each route's: a named variable that is not set is an
    error naming the config key, rather than calls the upstream refuses later."""
    from flywheel.service.api._gateway import upstream_key_envs

    keys = []
    for key_path, name in upstream_key_envs(config):
        key = settings.secret_from_env(name) if name else None
        if name and key is None:
            raise ConfigError(
                f"{key_path} names {name}, which is not set: export {name}=<the upstream's API key>, or set "
                "api_key_env to null for an upstream that takes no key.",
                [(key_path, f"{name} is not set")],
            )
        keys.append(key)
    return keys
