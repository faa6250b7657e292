"""The ``nemo`` backend's registration: ``nims[].backend: nemo`` → NIMs on the NeMo microservices platform.

Roles: ``inference`` (the NIM proxy's OpenAI-compatible endpoint), ``training`` (NeMo Customizer), ``embeddings``
(the NIM embeddings endpoint, with ``input_type``) and ``deployment`` (the Deployment Manager). Where the platform is
comes from ``nmp`` (the configuration's ``nmp_config``, which the registry's builders pass because this entry says
``uses_nmp_config``); what it leaves unset comes from the environment (``NEMO_BASE_URL``, ``NIM_BASE_URL``,
``DATASTORE_BASE_URL``, ``NMP_NAMESPACE``), as does everything when no ``nmp`` is given; keys always come from ``env``
(``NMP_API_KEY``, ``HF_TOKEN``). ``NMP_POLL_INTERVAL_S`` in ``env`` sets the seconds between status reads of
deployments and customization jobs (default 5 and 30). Importing this module is cheap: each factory imports what it
builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from flywheel.backends._types import (
    DeploymentBackend,
    EmbeddingBackend,
    EndpointOptions,
    InferenceBackend,
    TrainingBackend,
)
from flywheel.backends.nemo._client import PlatformEndpoints
from flywheel.backends.registry import BackendEntry
from flywheel.config._models import EmbeddingConfig, LoRAConfig, NIMConfig, NMPConfig, TrainingConfig
from flywheel.errors import ConfigError

#: The ``input_type`` sent with every embedding request: flywheel embeds user queries to compare them.
EMBEDDING_INPUT_TYPE = "query"
#: Seconds between status reads, unless ``NMP_POLL_INTERVAL_S`` says otherwise.
POLL_INTERVAL_ENV = "NMP_POLL_INTERVAL_S"
DEPLOYMENT_POLL_S = 5.0
CUSTOMIZATION_POLL_S = 30.0


def platform(env: Mapping[str, str], nmp: NMPConfig | None = None) -> PlatformEndpoints:
    """Where the platform is: ``nmp`` (URLs it leaves empty from the environment), else the environment."""
    return PlatformEndpoints.from_config(nmp, env) if nmp is not None else PlatformEndpoints.from_env(env)


def poll_interval(env: Mapping[str, str], default: float) -> float:
    """``NMP_POLL_INTERVAL_S`` from ``env`` (a positive number of seconds), else ``default``."""
    raw = env.get(POLL_INTERVAL_ENV)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(
            f"{POLL_INTERVAL_ENV} must be a positive number of seconds (got {raw!r}).",
            problems=[(POLL_INTERVAL_ENV, "a positive number of seconds")],
        )
    return value


def inference(
    nim: NIMConfig,
    *,
    adapter_dir: Path | None,
    cache_dir: Path | None,
    env: Mapping[str, str],
    endpoint: EndpointOptions | None = None,
    nmp: NMPConfig | None = None,
) -> InferenceBackend:
    """``nim.model_name`` on the NIM proxy, or, with ``adapter_dir`` (a ``nemo`` training result), the customized
    model recorded there. Key: ``endpoint.api_key``, else ``env[nims[].api_key_env]``, else ``NMP_API_KEY``."""
    from flywheel.backends.nemo._inference import CustomizedModel, nim_inference

    endpoints = platform(env, nmp)
    model = CustomizedModel.read(adapter_dir).model if adapter_dir is not None else nim.model_name
    key = env.get(nim.api_key_env) if nim.api_key_env else None
    return nim_inference(endpoints, model, api_key=key or endpoints.api_key, endpoint=endpoint)


def training(
    nim: NIMConfig,
    training: TrainingConfig,
    lora: LoRAConfig,
    *,
    cache_dir: Path | None,
    env: Mapping[str, str],
    nmp: NMPConfig | None = None,
) -> TrainingBackend:
    """A NeMo Customizer LoRA job for ``nim`` (``customizer_configs``) with ``training_config``/``lora_config``."""
    from flywheel.backends.nemo._client import PlatformClient
    from flywheel.backends.nemo._customization import NemoCustomization

    endpoints = platform(env, nmp)
    return NemoCustomization(
        PlatformClient(endpoints),
        nim,
        training,
        lora,
        poll_interval_s=poll_interval(env, CUSTOMIZATION_POLL_S),
    )


def embeddings(
    config: EmbeddingConfig, *, env: Mapping[str, str], nmp: NMPConfig | None = None
) -> EmbeddingBackend:
    """``config.model_name`` at ``config.url``, or at the NIM proxy when no url is set, with ``input_type``.

    Key: ``env[api_key_env]``, ``EMB_API_KEY``, ``NVIDIA_API_KEY``, then ``NMP_API_KEY``.
    """
    if not config.model_name:
        raise ConfigError(
            "icl_config.similarity_config.embedding_nim_config needs model_name for the nemo backend.",
            problems=[("icl_config.similarity_config.embedding_nim_config.model_name", "required")],
        )
    from flywheel.backends.openai_compat._embeddings import OpenAIEmbeddings

    names = [n for n in (config.api_key_env, "EMB_API_KEY", "NVIDIA_API_KEY") if n]
    key = next((env[n] for n in names if env.get(n)), None)
    if config.url:
        url = config.url
    else:
        endpoints = platform(env, nmp)
        url, key = endpoints.nim_v1, key or endpoints.api_key
    return OpenAIEmbeddings(
        url=url, model=config.model_name, api_key=key, extra_body={"input_type": EMBEDDING_INPUT_TYPE}
    )


def deployment(
    nim: NIMConfig,
    *,
    env: Mapping[str, str],
    nmp: NMPConfig | None = None,
    started_by_flywheel: bool = False,
) -> DeploymentBackend:
    """The Deployment Manager deployment of ``nim``'s base NIM (image, tag, GPUs, volume from ``nims[]``);
    ``started_by_flywheel``: a run recorded that flywheel created it, so :meth:`undeploy` may delete it."""
    from flywheel.backends.nemo._client import PlatformClient
    from flywheel.backends.nemo._deployment import DeploymentSpec, NimDeployment

    endpoints = platform(env, nmp)
    spec = DeploymentSpec.from_nim(nim, endpoints.namespace)
    return NimDeployment(
        PlatformClient(endpoints),
        spec,
        poll_interval_s=poll_interval(env, DEPLOYMENT_POLL_S),
        started_by_flywheel=started_by_flywheel,
    )


BACKEND = BackendEntry(
    inference=inference,
    training=training,
    embeddings=embeddings,
    deployment=deployment,
    uses_nmp_config=True,
)
