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
            raise UsageError(f"--input-file {shown(str(input_file))}: must hold a mapping of input names to values")
        inputs.update(loaded)
    for key, value in parse_pairs(pairs, "--input").items():
        _put(inputs, key.split("."), value)
    return inputs


def parse_pairs(pairs: list[str], option: str, *, json_values: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} '{_preview(pair)}': write KEY=VALUE")
        if not _is_utf8(key):
            raise UsageError(f"{option} {shown(key)}: the name is not UTF-8 text; write it in UTF-8")
        if not _is_utf8(value) and not (json_values and value.startswith("@")):  # a file's name may be any bytes
            raise UsageError(f"{option} {key}: the value is not UTF-8 text ('{_preview(value)}'); "
                             "pass it in UTF-8, or from a file with KEY=@FILE")
        out[key] = _value(value, f"{option} {key}") if json_values else value
    return out


def _is_utf8(text: str) -> bool:
    """False for text holding bytes that were not UTF-8: Python passes them on as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(text: str) -> str:
    """`text` as it can be printed: bytes that were not UTF-8 appear as \\xff."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _preview(text: str) -> str:
    text = shown(text)
    return text if len(text) <= 60 else f"{text[:60]}…"


def _value(text: str, where: str) -> Any:
    from lane.spec.source import load_json

    if text.startswith("@"):
        return read_data_file(Path(text[1:]), where)
    try:
        source = load_json(text, where)
    except json.JSONDecodeError:
        return text  # not JSON: the text itself
    if source.problems:
        raise UsageError(f"{where}: {source.problems[0].message}")
    return source.data


def read_data_file(path: Path, option: str) -> Any:
    """A JSON or YAML file's data; JSON is read as JSON (fast), within the limits of lane.spec.source."""
    from lane.spec.source import read_data

    if not path.is_file():
        raise UsageError(f"{option}: no file {shown(str(path))}")
    source = read_data(path, shown(str(path)))
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


def json_option(text: str, name: str) -> Any:
    """The JSON an option holds (`--edit`, `--result`), read within lane's limits; UsageError says what is wrong."""
    from lane.spec.source import load_json

    try:
        source = load_json(text, name)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{name} must be JSON ({exc}); for example {name} '{{\"body\": \"Hello\"}}'") from None
    if source.problems:
        raise UsageError(f"{name}: {source.problems[0].message}")
    from lane.store.values import checked

    _, unfit = checked(source.data, name)
    if unfit is not None:
        raise UsageError(f"{name} must be JSON data: {unfit}")
    return source.data
