"""Pydantic models of the configuration file.

The top-level keys of the reference blueprint (``nmp_config``, ``logging_config``, ``mlflow_config``,
``llm_judge_config``, ``nims``, ``data_split_config``, ``icl_config``, ``training_config``, ``lora_config``,
``evaluation_config``) keep their names and meaning so that a blueprint ``config.yaml`` loads unchanged; flywheel's
own additions sit beside them. Every model forbids unknown keys, so a typo is reported instead of ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


# --------------------------------------------------------------------------------------------------------- NeMo


class NMPConfig(_Strict):
    """Endpoints of the NeMo microservices platform (used only by the ``nemo`` backends)."""

    nemo_base_url: str | None = Field(None, description="NeMo platform base URL, e.g. http://nemo.test.")
    nim_base_url: str | None = Field(None, description="NIM proxy base URL, e.g. http://nim.test.")
    datastore_base_url: str | None = Field(None, description="NeMo Data Store base URL.")
    nmp_namespace: str = Field("dfwbp", description="Namespace for datasets and models on the platform.")


class LoggingConfig(_Strict):
    """Log verbosity of the service and CLI."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field("INFO", description="Log level.")


class MLflowConfig(_Strict):
    """Experiment tracking in MLflow (optional)."""

    enabled: bool | None = Field(
        None,
        description="Log results to MLflow. Default: true when COMPOSE_PROFILES contains 'mlflow', else false.",
    )
    tracking_uri: str = Field(
        "http://0.0.0.0:5000", description="MLflow tracking URI (server URL or file:/ path)."
    )
    experiment_name_prefix: str = Field("data-flywheel", description="Prefix of the per-run experiment name.")
    artifact_location: str = Field("./mlruns", description="Artifact location for new experiments.")


# --------------------------------------------------------------------------------------------------------- models


class _NIMDeployment(_Strict):
    """Fields the reference uses to deploy a NIM on Kubernetes; kept for compatibility."""

    context_length: int | None = Field(None, ge=1, description="Context length of the model, in tokens.")
    gpus: int | None = Field(None, ge=0, description="GPUs to deploy the model on (NeMo deployments).")
    pvc_size: str | None = Field(None, description="Persistent volume size for NeMo deployments, e.g. 25Gi.")
    tag: str | None = Field(None, description="NIM container tag for NeMo deployments.")
    registry_base: str = Field("nvcr.io/nim", description="Container registry of NIM images.")


class LLMJudgeConfig(_NIMDeployment):
    """The LLM judge used by judge-based metrics (tool-calling correctness, similarity).

    ``deployment_type: remote`` calls an OpenAI-compatible endpoint (``url``, ``model_name``; API key from
    ``LLM_JUDGE_API_KEY`` then ``NVIDIA_API_KEY``). ``local`` deploys ``model_name`` as a NIM on the NeMo platform in
    the reference; flywheel's ``backend: local`` runs a local model instead.
    """

    deployment_type: Literal["remote", "local"] = Field(description="remote (an endpoint) or local.")
    model_name: str | None = Field(None, description="Judge model name.")
    url: str | None = Field(None, description="Chat-completions URL of a remote judge.")
    api_key_env: str | None = Field(
        None,
        description="Name of an environment variable holding the judge's API key (default: LLM_JUDGE_API_KEY).",
    )
    backend: Literal["openai", "local", "nemo"] | None = Field(
        None, description="Backend running the judge; default: openai for remote, nemo for local."
    )
    model_path: str | None = Field(
        None, description="For backend: local, the model source (see nims[].model_path)."
    )
    max_concurrency: int = Field(8, ge=1, description="Concurrent judge calls.")
    timeout_s: float = Field(120.0, gt=0, description="Per-call timeout in seconds.")

    @model_validator(mode="after")
    def _remote_needs_url(self) -> LLMJudgeConfig:
        if self.deployment_type == "remote" and self.backend in (None, "openai"):
            missing = [k for k in ("url", "model_name") if not getattr(self, k)]
            if missing:
                raise ValueError(f"a remote judge needs {' and '.join(missing)}")
        return self


class CustomizerConfig(_Strict):
    """How to fine-tune one candidate (reference ``nims[].customizer_configs``)."""

    target: str | None = Field(None, description="Base model to customise (NeMo Customizer target id).")
    gpus: int | None = Field(None, ge=0, description="GPUs for training.")
    num_nodes: int = Field(1, ge=1, description="Nodes for training.")
    tensor_parallel_size: int = Field(1, ge=1, description="Tensor parallel size.")
    data_parallel_size: int = Field(1, ge=1, description="Data parallel size.")
    use_sequence_parallel: bool = Field(False, description="Use sequence parallelism.")
    micro_batch_size: int = Field(1, ge=1, description="Micro batch size.")
    training_precision: str = Field("bf16-mixed", description="Training precision.")
    max_seq_length: int = Field(4096, ge=8, description="Maximum training sequence length in tokens.")


class NIMConfig(_NIMDeployment):
    """One candidate model (reference ``nims[]``)."""

    model_name: str = Field(description="Candidate name as reported, e.g. meta/llama-3.2-1b-instruct.")
    model_type: Literal["llm", "embedding"] = Field("llm", description="Kind of model.")
    customization_enabled: bool = Field(False, description="Fine-tune this candidate with LoRA.")
    customizer_configs: CustomizerConfig | None = Field(None, description="Fine-tuning settings.")
    backend: str = Field(
        "nemo",
        min_length=1,
        description="Where the candidate runs: local (transformers on this machine), openai (an OpenAI-compatible "
        "endpoint), nemo (NIM on the NeMo platform, as in the reference), scripted (tests only), or a name added "
        "with flywheel.backends.registry.register.",
    )
    model_path: str | None = Field(
        None,
        description="For backend local: a packaged model short name, a local HF directory, a local GGUF file or a "
        "Hugging Face hub id (default: model_name).",
    )
    base_url: str | None = Field(None, description="For backend openai: the endpoint's base URL (…/v1).")
    api_key_env: str | None = Field(None, description="For backend openai: env var holding the API key.")
    parameters_b: float | None = Field(
        None,
        gt=0,
        description="Parameter count in billions (for the cost report; guessed from the name if unset).",
    )

    @model_validator(mode="after")
    def _customization_needs_config(self) -> NIMConfig:
        if self.customization_enabled and self.customizer_configs is None and self.backend == "nemo":
            raise ValueError("customization_enabled needs customizer_configs for the nemo backend")
        return self


# --------------------------------------------------------------------------------------------------------- data


class DataSplitConfig(_Strict):
    """How records are selected and split into eval / train / val."""

    eval_size: int = Field(100, ge=1, description="Records in the evaluation split.")
    val_ratio: float = Field(
        0.1, ge=0.0, lt=1.0, description="Share of the remaining records used for validation."
    )
    min_total_records: int = Field(50, ge=1, description="Fewest records a run accepts.")
    random_seed: int | None = Field(None, description="Seed for sampling and splitting (null: random).")
    limit: int | None = Field(10000, ge=1, description="Most records used by a run (null: all).")
    parse_function_arguments: bool = Field(True, description="Parse string tool-call arguments as JSON.")
    stratify_enabled: bool = Field(True, description="Stratify the splits by class label.")
    min_samples_per_class: int = Field(
        2, ge=1, description="Members a class needs to be stratified on its own."
    )
    rare_class_threshold: int = Field(
        1,
        ge=0,
        description="Classes with at most this many records are pooled into 'others' for stratification.",
    )

    @model_validator(mode="after")
    def _limit_vs_min(self) -> DataSplitConfig:
        if self.limit is not None and self.limit < self.min_total_records:
            raise ValueError(
                f"limit ({self.limit}) cannot be less than min_total_records ({self.min_total_records}); "
                "raise limit or lower min_total_records"
            )
        return self


class EmbeddingConfig(_NIMDeployment):
    """Embedding model used for semantic-similarity ICL example selection."""

    deployment_type: Literal["remote", "local"] = Field(description="remote (an endpoint) or local.")
    model_name: str | None = Field(None, description="Embedding model name.")
    url: str | None = Field(None, description="Embeddings URL of a remote model (…/v1/embeddings).")
    api_key_env: str | None = Field(None, description="Env var holding the API key (default: EMB_API_KEY).")
    model_path: str | None = Field(None, description="For a local model: a directory or packaged short name.")


class SimilarityConfig(_Strict):
    """Semantic-similarity selection of few-shot examples."""

    relevance_ratio: float = Field(0.7, ge=0.0, le=1.0, description="Share of examples chosen for relevance.")
    embedding_nim_config: EmbeddingConfig | None = Field(None, description="Embedding model.")


class ICLConfig(_Strict):
    """Few-shot (in-context learning) evaluation set."""

    max_context_length: int = Field(8192, ge=1, description="Context budget of the candidate, in tokens.")
    reserved_tokens: int = Field(2048, ge=0, description="Tokens kept free for the prompt and answer.")
    max_examples: int = Field(3, ge=0, description="Most examples per prompt.")
    min_examples: int = Field(1, ge=0, description="Fewest examples per prompt.")
    example_selection: Literal["uniform_distribution", "semantic_similarity"] = Field(
        "uniform_distribution", description="How examples are chosen."
    )
    similarity_config: SimilarityConfig | None = Field(None, description="For semantic_similarity.")

    @model_validator(mode="after")
    def _check(self) -> ICLConfig:
        if self.min_examples > self.max_examples:
            raise ValueError(
                f"min_examples ({self.min_examples}) is greater than max_examples ({self.max_examples})"
            )
        if self.reserved_tokens >= self.max_context_length:
            raise ValueError("reserved_tokens must be smaller than max_context_length")
        return self


class TrainingConfig(_Strict):
    """Fine-tuning hyper-parameters."""

    training_type: Literal["sft"] = Field("sft", description="Training objective.")
    finetuning_type: Literal["lora"] = Field("lora", description="Fine-tuning method.")
    epochs: int = Field(2, ge=1, description="Passes over the training set.")
    batch_size: int = Field(16, ge=1, description="Examples per optimizer step.")
    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (null: no cap)."
    )
    eval_every_steps: int | None = Field(
        None, ge=1, description="Validation-loss interval in steps (null: once per epoch)."
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many validations without improvement (null: never)."
    )
    max_seq_length: int | None = Field(
        None,
        ge=8,
        description="Truncate training examples to this many tokens (default: customizer max_seq_length).",
    )
    seed: int = Field(42, description="Seed for initialisation and data order.")


class LoRAConfig(_Strict):
    """LoRA adapter settings."""

    adapter_dim: int = Field(32, ge=1, description="LoRA rank.")
    adapter_alpha: int | None = Field(None, ge=1, description="LoRA alpha (default: 2 × adapter_dim).")
    adapter_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="LoRA dropout.")
    sequence_packing_enabled: bool = Field(
        False, description="Pack several short examples into one sequence."
    )
    target_modules: list[str] | None = Field(
        None, description="Module names to adapt (default: all attention and MLP projections)."
    )


class EvaluationConfig(_Strict):
    """How candidates are scored."""

    workload_type: Literal["auto", "classification", "tool_calling", "generic"] = Field(
        "auto", description="Kind of workload; auto decides from the teacher's answers."
    )
    tool_eval_type: Literal["tool-calling-metric", "tool-calling-judge"] | None = Field(
        None,
        description="Tool-calling scoring. Unset (the reference's meaning): the call metrics plus the judge's "
        "tool_calling_correctness when llm_judge_config is set; tool-calling-metric: the call metrics only; "
        "tool-calling-judge: the call metrics plus the judge.",
    )
    limit: int | None = Field(None, ge=1, description="Score at most this many eval records (null: all).")
    max_new_tokens: int | None = Field(
        None, ge=1, description="Answer length cap for candidates (null: twice the teacher's longest answer)."
    )
    bootstrap_samples: int = Field(1000, ge=100, description="Bootstrap resamples for confidence intervals.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Confidence level of the intervals.")


# --------------------------------------------------------------------------------------------------------- flywheel


class CurationConfig(_Strict):
    """flywheel's curation options beyond the reference."""

    pii: Literal["off", "mask"] = Field("off", description="Mask personal data in training and eval text.")
    near_duplicate_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Drop records whose user text is this similar (Jaccard) to a kept one.",
    )
    max_tool_properties: int = Field(8, ge=1, description="Flag tool schemas with more properties than this.")
    workers: int | None = Field(
        None,
        ge=1,
        description="Processes for the dataset build's streaming passes (null: 1; 2 roughly halves the wall time "
        "of a million-record build on 2 idle cores).",
    )


class PromotionConfig(_Strict):
    """When a candidate is recommended to replace the teacher."""

    min_score: float | dict[str, float] = Field(
        0.9, description="Lower CI bound a candidate's score must clear (one value, or per metric)."
    )


class ExecutorConfig(_Strict):
    """How jobs are executed."""

    kind: Literal["inprocess", "celery"] = Field(
        "inprocess", description="In-process threads or Celery workers."
    )
    max_concurrent_jobs: int = Field(1, ge=1, description="Jobs run side by side by the in-process executor.")
    heartbeat_s: float = Field(10.0, gt=0, description="Worker heartbeat interval in seconds.")
    lease_s: float = Field(
        60.0, gt=0, description="A step whose worker missed heartbeats this long is recovered."
    )
    visibility_timeout_s: float = Field(
        21600.0,
        gt=0,
        description="Celery/Redis re-delivery time of an unacknowledged task; above the longest step.",
    )
    queue_prefix: str = Field(
        "", description="Prefix of flywheel's Redis keys (to share a Redis between setups)."
    )


class PriceEntry(_Strict):
    """Price of one model, for the cost report."""

    input_per_1m: float | None = Field(None, ge=0, description="$ per 1M input tokens.")
    output_per_1m: float | None = Field(None, ge=0, description="$ per 1M output tokens.")
    gpu_hour: float | None = Field(None, ge=0, description="$ per GPU-hour (with measured throughput).")


class CostConfig(_Strict):
    """Cost model of the report."""

    teacher_model: str | None = Field(None, description="Teacher model name (default: from the logs).")
    teacher_parameters_b: float | None = Field(
        None, gt=0, description="Teacher size in billions of parameters."
    )
    prices: dict[str, PriceEntry] = Field(default_factory=dict, description="Price table by model name.")


class UpstreamConfig(_Strict):
    """An OpenAI-compatible server the gateway forwards to (the teacher)."""

    base_url: str = Field(
        description="Base URL of the upstream's OpenAI API, ending in /v1, e.g. https://integrate.api.nvidia.com/v1."
    )
    api_key_env: str | None = Field(
        None,
        description="Name of the environment variable holding the upstream's API key (null: send no key).",
    )


class GatewayRoute(_Strict):
    """Requests a route matches go to its ``upstream`` instead of the gateway's default one.

    A route matches a request when every list it sets holds the request's value: ``models`` the body's ``model``,
    ``workload_ids`` the ``X-Flywheel-Workload-Id`` header (or the gateway's default workload).
    """

    upstream: UpstreamConfig = Field(description="Where the matched requests are forwarded.")
    models: list[str] = Field(
        default_factory=list, description="Request `model` values this route takes (empty: any model)."
    )
    workload_ids: list[str] = Field(
        default_factory=list, description="Workloads this route takes (empty: any workload)."
    )

    @model_validator(mode="after")
    def _matches_something(self) -> GatewayRoute:
        if not self.models and not self.workload_ids:
            raise ValueError(
                "a route needs `models` or `workload_ids` (or both); the default upstream is `gateway.upstream`"
            )
        return self

    def matches(self, model: str | None, workload_id: str) -> bool:
        """Whether a request for ``model`` from ``workload_id`` goes to this route's upstream."""
        return (not self.models or model in self.models) and (
            not self.workload_ids or workload_id in self.workload_ids
        )


class GatewayConfig(_Strict):
    """``flywheel serve`` also speaks the OpenAI API under ``/v1``, forwarding to ``upstream`` (or the first of
    ``routes`` that matches the request) and logging every successful exchange as a log record."""

    upstream: UpstreamConfig = Field(description="Where requests are forwarded unless a route matches.")
    routes: list[GatewayRoute] = Field(
        default_factory=list,
        description="More upstreams, chosen by the request's model or workload; the first match wins.",
    )
    default_workload_id: str = Field(
        "gateway",
        min_length=1,
        max_length=255,
        description="workload_id of a request without an X-Flywheel-Workload-Id header (default: gateway).",
    )
    default_client_id: str = Field(
        "gateway",
        min_length=1,
        max_length=255,
        description="client_id of a request without an X-Flywheel-Client-Id header (default: gateway).",
    )
    timeout_s: float = Field(
        300.0,
        gt=0,
        description="Seconds to wait for the upstream to connect, or to send its next bytes (default: 300).",
    )
    spool_dir: str | None = Field(
        None,
        min_length=1,
        description="Directory where logged records wait while the store is down, replayed in order once it is "
        "back (default: null, meaning <FLYWHEEL_HOME>/spool/gateway).",
    )
    spool_retry_s: float = Field(
        5.0,
        gt=0,
        description="Seconds between attempts to reach a store that failed, while records wait in the spool "
        "(default: 5).",
    )


class FlywheelConfig(_Strict):
    """The whole configuration file."""

    nmp_config: NMPConfig = Field(default_factory=NMPConfig)
    logging_config: LoggingConfig = Field(default_factory=LoggingConfig)
    mlflow_config: MLflowConfig = Field(default_factory=MLflowConfig)
    llm_judge_config: LLMJudgeConfig | None = Field(
        None, description="LLM judge (null: judge metrics not computed)."
    )
    nims: list[NIMConfig] = Field(default_factory=list, description="Candidate models.")
    data_split_config: DataSplitConfig = Field(default_factory=DataSplitConfig)
    icl_config: ICLConfig = Field(default_factory=ICLConfig)
    training_config: TrainingConfig = Field(default_factory=TrainingConfig)
    lora_config: LoRAConfig = Field(default_factory=LoRAConfig)
    evaluation_config: EvaluationConfig = Field(default_factory=EvaluationConfig)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    gateway: GatewayConfig | None = Field(
        None, description="OpenAI-compatible gateway under /v1 of `flywheel serve` (null: off)."
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_duplicate_nims(cls, data: Any) -> Any:
        # The reference keeps the first of several candidates with the same model_name; so do we.
        if isinstance(data, dict) and isinstance(data.get("nims"), list):
            seen: set[str] = set()
            unique = []
            for nim in data["nims"]:
                name = nim.get("model_name") if isinstance(nim, dict) else None
                if name is not None and name in seen:
                    continue
                if name is not None:
                    seen.add(name)
                unique.append(nim)
            data = {**data, "nims": unique}
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> FlywheelConfig:
        check_icl_against_split(self.icl_config, self.data_split_config)
        return self


def check_icl_against_split(icl: ICLConfig, split: DataSplitConfig) -> None:
    """Reject settings that cannot work together (used for the file and for per-job overrides)."""
    if icl.max_examples > split.eval_size:
        raise ValueError(
            f"icl_config.max_examples ({icl.max_examples}) is greater than data_split_config.eval_size "
            f"({split.eval_size}); lower max_examples or raise eval_size"
        )
    if icl.example_selection == "semantic_similarity" and (
        icl.similarity_config is None or icl.similarity_config.embedding_nim_config is None
    ):
        raise ValueError(
            "icl_config.example_selection is semantic_similarity but icl_config.similarity_config."
            "embedding_nim_config is missing; add it or use uniform_distribution"
        )
