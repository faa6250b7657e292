"""Layering: ``pipeline/`` asks the backend registry and never imports a concrete backend.

A static scan of the source (``ast``), so an import hidden inside a function, a relative import or an
``importlib.import_module("…")`` call is caught as well as a top-level ``import``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import flywheel

PACKAGE_ROOT = Path(flywheel.__file__).parent
CONCRETE_BACKENDS = (
    "flywheel.backends.local",
    "flywheel.backends.openai_compat",
    "flywheel.backends.scripted",
    "flywheel.backends.nemo",
)


def _is_concrete(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in CONCRETE_BACKENDS)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module of ``from … import``, relative forms (``from ..x import y``) resolved."""
    if node.level == 0:
        return node.module or ""
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def concrete_backend_imports(source: str, importer: str, is_package: bool = False) -> list[str]:
    """``line: module`` for every import of a concrete backend in ``source`` (module ``importer``), in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, importer, is_package)
            modules = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                modules = [node.args[0].value]
        concrete = [module for module in modules if _is_concrete(module)]
        if concrete:
            found.append((node.lineno, concrete[0]))
    return [f"{line}: {module}" for line, module in sorted(found)]


def test_pipeline_imports_no_concrete_backend() -> None:
    files = sorted((PACKAGE_ROOT / "pipeline").rglob("*.py"))
    assert files, "the pipeline package was not found"
    offences = {
        str(path.relative_to(PACKAGE_ROOT.parent)): hits
        for path in files
        if (
            hits := concrete_backend_imports(path.read_text(), _module_name(path), path.name == "__init__.py")
        )
    }
    assert offences == {}, (
        "pipeline/ must ask flywheel.backends.registry for a backend, not import one: " + repr(offences)
    )


def test_the_scan_finds_every_form_of_import() -> None:
    source = """
import flywheel.backends.local
import flywheel.backends.registry
from flywheel.backends.openai_compat._embeddings import OpenAIEmbeddings
from flywheel.backends import scripted
from flywheel.backends import ChatRequest
from ...backends.local import save_merged_model
import importlib

def build():
    from flywheel.backends.local import resolve_model_source
    return importlib.import_module("flywheel.backends.nemo")
"""
    hits = concrete_backend_imports(source, "flywheel.pipeline.export._export")
    assert [hit.split(": ")[0] for hit in hits] == ["2", "4", "5", "7", "11", "12"]
    assert "4: flywheel.backends.openai_compat._embeddings" in hits
    assert "5: flywheel.backends.scripted" in hits
    assert "7: flywheel.backends.local" in hits  # the relative import, resolved
    assert (
        concrete_backend_imports("from flywheel.backends.registry import register", "flywheel.pipeline.x")
        == []
    )
