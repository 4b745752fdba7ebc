"""`KEY=VALUE` pairs and input files from the command line."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from lane.errors import UsageError


def parse_inputs(pairs: list[str], input_file: Path | None) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if input_file is not None:
        loaded = read_data_file(input_file, "--input-file")
        if not isinstance(loaded, dict):
            raise UsageError(f"--input-file {input_file}: must hold a mapping of input names to values")
        inputs.update(loaded)
    for key, value in parse_pairs(pairs, "--input").items():
        _put(inputs, key.split("."), value)
    return inputs


def parse_pairs(pairs: list[str], option: str, *, json_values: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {pair!r}: write KEY=VALUE")
        out[key] = _value(value, option) if json_values else value
    return out


def _value(text: str, option: str) -> Any:
    if text.startswith("@"):
        return read_data_file(Path(text[1:]), option)
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_data_file(path: Path, option: str) -> Any:
    from lane.spec.source import read_yaml

    if not path.is_file():
        raise UsageError(f"{option}: no file {path}")
    source = read_yaml(path, str(path))  # JSON is YAML too
    if source.problems:
        raise UsageError(f"{option}: {source.problems[0]}")
    return source.data


def _put(target: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        child = target.setdefault(key, {})
        if not isinstance(child, dict):
            raise UsageError(f"--input {'.'.join(keys)}: {key} is already a value, not a mapping")
        target = child
    target[keys[-1]] = value


def parse_day(today: str | None) -> date | None:
    """`--today YYYY-MM-DD`: the day to count from, for checks that depend on the date."""
    if today is None:
        return None
    try:
        return date.fromisoformat(today)
    except ValueError as exc:
        raise UsageError(f"--today {today!r} is not a date: write YYYY-MM-DD") from exc
