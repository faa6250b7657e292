"""Configuration: one YAML file plus environment variables, validated by pydantic models.

``Settings.load(path)`` is the entry point; ``FlywheelConfig`` is the file's schema.
"""

from flywheel.config._load import apply_overrides, format_problems, load_config_file, validate_model
from flywheel.config._models import (
    CostConfig,
    CurationConfig,
    CustomizerConfig,
    DataSplitConfig,
    EmbeddingConfig,
    EvaluationConfig,
    ExecutorConfig,
    FlywheelConfig,
    ICLConfig,
    LLMJudgeConfig,
    LoRAConfig,
    MLflowConfig,
    NIMConfig,
    PromotionConfig,
    TrainingConfig,
    check_icl_against_split,
)
from flywheel.config._settings import Settings, redact_url

__all__ = [
    "CostConfig",
    "CurationConfig",
    "CustomizerConfig",
    "DataSplitConfig",
    "EmbeddingConfig",
    "EvaluationConfig",
    "ExecutorConfig",
    "FlywheelConfig",
    "ICLConfig",
    "LLMJudgeConfig",
    "LoRAConfig",
    "MLflowConfig",
    "NIMConfig",
    "PromotionConfig",
    "Settings",
    "TrainingConfig",
    "apply_overrides",
    "check_icl_against_split",
    "format_problems",
    "load_config_file",
    "redact_url",
    "validate_model",
]
