"""Checking runbooks' `triggers:` (webhook, schedule, watch): each is whole, and webhook names are unique."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from lane.errors import Problem
from lane.spec.source import Loc, Source

if TYPE_CHECKING:
    from lane.spec.project import ProjectSpec

ENV_REFERENCE = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")

KINDS = ("webhook", "schedule", "watch")


def check_triggers(project: ProjectSpec) -> list[Problem]:
    problems: list[Problem] = []
    hooks: dict[str, str] = {}
    for book in project.runbooks.values():
        props = book.file.inputs.get("properties") if isinstance(book.file.inputs.get("properties"), dict) else None
        for i, trigger in enumerate(book.file.triggers):
            at = ("triggers", i)
            kinds = [k for k in KINDS if getattr(trigger, k) is not None]
            if len(kinds) != 1:
                problems.append(book.source.at(at, f"a trigger has exactly one of webhook, schedule, watch (it has {' and '.join(kinds) or 'none'})"))
                continue
            kind = kinds[0]
            if kind == "webhook":
                name = trigger.webhook or ""
                if name in hooks:
                    problems.append(book.source.at((*at, "webhook"), f"webhook '{name}' is also a trigger of runbook {hooks[name]}"))
                hooks.setdefault(name, book.name)
                if trigger.secret is None or not ENV_REFERENCE.fullmatch(trigger.secret):
                    problems.append(book.source.at(at, "a webhook needs `secret: env:NAME`, the key its sender signs each body with (HMAC-SHA256)"))
            elif kind == "schedule":
                problems += _check_cron(book.source, (*at, "schedule"), trigger.schedule or "")
            elif trigger.input is None:
                problems.append(book.source.at(at, "a watch trigger needs `input: NAME`, the input each new file's path is given as"))
            elif props is not None and trigger.input not in props:
                problems.append(book.source.at((*at, "input"), f"runbook {book.name} has no input '{trigger.input}' (inputs: {', '.join(props) or 'none'})"))
            if kind != "webhook" and trigger.secret is not None:
                problems.append(book.source.at((*at, "secret"), "only a webhook has a secret", key=True))
    return problems


def _check_cron(source: Source, at: Loc, text: str) -> list[Problem]:
    try:
        from croniter import croniter
    except ImportError:
        return [source.at(at, "schedules need lane's serve extra: pip install 'lane[serve]'")]
    if len(text.split()) != 5 or not croniter.is_valid(text):
        return [source.at(at, f"schedule {text!r} is not a cron expression of five fields, such as \"0 9 * * 1-5\"")]
    return []
