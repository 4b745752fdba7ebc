"""Model ids (`provider:model`) to models."""

from __future__ import annotations

from pathlib import Path

from lane.errors import ModelUnavailable
from lane.models.base import Model
from lane.models.scripted import ScriptedModel

PROVIDERS = ("local", "scripted", "openai", "anthropic", "ollama")
COMING = {
    "openai": "OpenAI models",
    "anthropic": "Anthropic models",
    "ollama": "Ollama models",
}


def provider_of(model_id: str) -> str:
    return model_id.split(":", 1)[0]


def load_model(model_id: str, project_dir: Path) -> Model:
    """The model for a resolved id (aliases already followed)."""
    provider, _, rest = model_id.partition(":")
    if provider == "scripted":
        return ScriptedModel.from_file(project_dir / rest, name=rest)
    if provider == "local":
        from lane.models.local import LocalModel
        from lane.models.weights import default_weights

        return LocalModel(model_id, project_dir / rest if rest else default_weights())
    what = COMING.get(provider, f"provider {provider!r}")
    raise ModelUnavailable(
        f"model {model_id!r}: {what} are not available in this version of lane yet; "
        "rehearse the runbook with `model: scripted:FILE` (see docs/files.md)"
    )
