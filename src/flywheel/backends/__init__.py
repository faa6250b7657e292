"""Backends: one small interface per role (inference, training, embeddings, merge, deployment), several
implementations, chosen by name through :mod:`flywheel.backends.registry`.

Only ``backends/local`` imports torch/transformers/peft; nothing here imports them at module level.
"""

from flywheel.backends._types import (
    BaseWeights,
    ChatRequest,
    DeploymentBackend,
    EmbeddingBackend,
    EndpointOptions,
    Generation,
    InferenceBackend,
    MergeBackend,
    Message,
    StopCheck,
    Tool,
    TrainedAdapter,
    TrainingBackend,
    TrainingProgress,
    stop_is_cancel,
)

__all__ = [
    "BaseWeights",
    "ChatRequest",
    "DeploymentBackend",
    "EmbeddingBackend",
    "EndpointOptions",
    "Generation",
    "InferenceBackend",
    "MergeBackend",
    "Message",
    "StopCheck",
    "Tool",
    "TrainedAdapter",
    "TrainingBackend",
    "TrainingProgress",
    "stop_is_cancel",
]
