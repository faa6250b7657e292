"""Configuration: one YAML file plus environment variables, validated by pydantic models.

``Settings.load(path)`` is the entry point; ``FlywheelConfig`` is the file's schema.
"""

from flywheel.config._load import (
    apply_overrides,
    format_problems,
    load_config_file,
    runnable_problems,
    validate_model,
)
from flywheel.config._models import (
    CostConfig,
    CurationConfig,
    CustomizerConfig,
    DataSplitConfig,
    EmbeddingConfig,
    EvaluationConfig,
    ExecutorConfig,
    FlywheelConfig,
    GatewayConfig,
    GatewayRoute,
    ICLConfig,
    LLMJudgeConfig,
    LoRAConfig,
    MLflowConfig,
    NIMConfig,
    PromotionConfig,
    TrainingConfig,
    UpstreamConfig,
    check_icl_against_split,
)
from flywheel.config._settings import (
    SUPPORTED_DATABASES,
    ApiKey,
    Settings,
    normalize_database_url,
    parse_api_keys,
    redact_url,
    redacted_config,
)
from flywheel.config._window import time_window_problems

__all__ = [
    "SUPPORTED_DATABASES",
    "ApiKey",
    "CostConfig",
    "CurationConfig",
    "CustomizerConfig",
    "DataSplitConfig",
    "EmbeddingConfig",
    "EvaluationConfig",
    "ExecutorConfig",
    "FlywheelConfig",
    "GatewayConfig",
    "GatewayRoute",
    "ICLConfig",
    "LLMJudgeConfig",
    "LoRAConfig",
    "MLflowConfig",
    "NIMConfig",
    "PromotionConfig",
    "Settings",
    "TrainingConfig",
    "UpstreamConfig",
    "apply_overrides",
    "check_icl_against_split",
    "format_problems",
    "load_config_file",
    "normalize_database_url",
    "parse_api_keys",
    "redact_url",
    "redacted_config",
    "runnable_problems",
    "time_window_problems",
    "validate_model",
]
