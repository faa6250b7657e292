"""The ``nemo`` backend: candidates as NIMs on the NeMo microservices platform — the only code that speaks NeMo HTTP.

::

    endpoints = PlatformEndpoints.from_config(config.nmp_config, os.environ)
    client = PlatformClient(endpoints)
    eval_set = NemoDatasets(client).upload("flywheel-eval-w-1700000000", {"eval_data.jsonl": eval_jsonl})
    nim = NimDeployment(client, DeploymentSpec.from_nim(candidate, endpoints.namespace))
    base_url = nim.deploy(on_progress=print)          # reuses an existing deployment, waits for `ready`
    answers = nim_inference(endpoints, candidate.model_name).generate(requests)
    adapter = NemoCustomization(client, candidate, training_config, lora_config).train(train, val, out_dir)
    tuned = nim_inference(endpoints, CustomizedModel.read(adapter.adapter_dir).model)
    nim.undeploy()                                    # only if flywheel started it

Modules: ``_client`` (endpoints, retries, error translation; SDK vs httpx), ``_datasets`` (Data Store +
Entity Store), ``_deployment`` (Deployment Manager), ``_inference`` (NIM chat through the OpenAI-compatible
backend), ``_customization`` (Customizer), ``_factories`` (registration for the ``inference``, ``training``,
``embeddings`` and ``deployment`` roles).
"""

from flywheel.backends.nemo._client import PlatformClient, PlatformEndpoints, PlatformError
from flywheel.backends.nemo._customization import JOB_RECORD, CustomizationJobRef, NemoCustomization
from flywheel.backends.nemo._datasets import DatasetRef, NemoDatasets
from flywheel.backends.nemo._deployment import DeploymentProgress, DeploymentSpec, NimDeployment
from flywheel.backends.nemo._inference import MANIFEST, CustomizedModel, nim_inference

__all__ = [
    "JOB_RECORD",
    "MANIFEST",
    "CustomizationJobRef",
    "CustomizedModel",
    "DatasetRef",
    "DeploymentProgress",
    "DeploymentSpec",
    "NemoCustomization",
    "NemoDatasets",
    "NimDeployment",
    "PlatformClient",
    "PlatformEndpoints",
    "PlatformError",
    "nim_inference",
]
