"""Secrets: referenced as `env:NAME`, never stored.

A project's secrets are the names in `secrets:` plus every `env:NAME` written
in lane.yaml or an agent file. Their values are read from the environment and
replaced by `[secret:NAME]` in everything lane stores or shows: journal events,
run reasons, inputs, decisions and error messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

MIN_LENGTH = 4  # shorter values ("1", "yes") would blot out ordinary text; such a value is no secret anyway

_known: set[str] = set()  # every secret name of every project loaded in this process (for error messages)


class Redactor:
    def __init__(self, names: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        found = {(env[n], n) for n in names if len(env.get(n, "")) >= MIN_LENGTH}
        self.values = sorted(found, key=lambda pair: -len(pair[0]))  # longest first: one secret may contain another

    def text(self, text: str) -> str:
        for value, name in self.values:
            if value in text:
                text = text.replace(value, f"[secret:{name}]")
        return text

    def __call__(self, data: Any) -> Any:
        """`data` with every secret value replaced, in strings at any depth (keys too)."""
        if not self.values:
            return data
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {self(k): self(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self(v) for v in data]
        if isinstance(data, (int, float)) and not isinstance(data, bool):  # a PIN is a secret too: 12345678 as a number
            shown = str(data)
            return self.text(shown) if any(value in shown for value, _ in self.values) else data
        return data


def remember(names: Iterable[str]) -> None:
    """Note a loaded project's secret names, so messages printed later can be scrubbed too."""
    _known.update(names)


def scrub(text: str) -> str:
    """`text` without the value of any secret of a project loaded in this process."""
    return Redactor(_known).text(text)


def scrub_data(data: Any) -> Any:
    """`data` without the value of any secret of a project loaded in this process, in strings at any depth."""
    return Redactor(_known)(data)
