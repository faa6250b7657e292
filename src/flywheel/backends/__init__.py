"""Backends: one small interface per role (inference, training, embeddings), several implementations.

Only ``backends/local`` imports torch/transformers/peft; nothing here imports them at module level.
"""

from flywheel.backends._types import (
    ChatRequest,
    EmbeddingBackend,
    Generation,
    InferenceBackend,
    Message,
    Tool,
    TrainedAdapter,
    TrainingBackend,
    TrainingProgress,
)

__all__ = [
    "ChatRequest",
    "EmbeddingBackend",
    "Generation",
    "InferenceBackend",
    "Message",
    "Tool",
    "TrainedAdapter",
    "TrainingBackend",
    "TrainingProgress",
]
