"""HTTP tools: one endpoint from `lane.yaml`, called with the agent's arguments.

    toolsets:
      tickets:
        http:
          method: POST                                  # default GET
          url: "http://127.0.0.1:8080/tickets/{queue}"
          headers: {Authorization: "Bearer env:TICKETS_TOKEN"}
          query: [priority]
          body: json
          parameters: {type: object, properties: {queue: {type: string}}, required: [queue]}
        effect: external
        idempotent: true
        timeout: 10          # seconds for the whole call
        max_output: 65536    # bytes of the answer read; the rest is dropped

`url`: `{name}` is filled from the argument `name`, percent-quoted whole (`/`, `?`,
`#` too), so a value stays inside its segment and the host and path are the config's.
It must be a required string or number argument (`HttpTool.problems`).
`env:NAME` in the URL or a header value is read from the environment at each call and
inserted as it is; results, errors and rule subjects show `env:NAME`, never the value.
`query`: arguments sent as query parameters (absent ones are left out).
`body`: `json` sends the arguments the URL and query do not use as a JSON object (the
default for POST, PUT and PATCH); `none` sends no body (the default otherwise).
`parameters`: the JSON Schema (Draft 2020-12) of the arguments; by default the URL's
placeholders as required strings, and the query arguments.

Every request carries `Idempotency-Key: <ctx.idempotency_key>`. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from lane.errors import ToolError
from lane.spec.schema import schema_errors
from lane.tools.base import Effect, Lane, ToolArgsInvalid, ToolContext, string_arguments

JSON_BODY_METHODS = ("POST", "PUT", "PATCH")
SEGMENT_TYPES = {"string", "number", "integer"}
_ENV = re.compile(r"env:([A-Za-z_][A-Za-z0-9_]*)")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# One pass over the template for both: text put in by one is never read again as the other,
# so an argument cannot name a secret and a secret's braces are not placeholders.
_TOKEN = re.compile(f"{_ENV.pattern}|{_PLACEHOLDER.pattern}")


class HttpTool:
    """One HTTP endpoint from `lane.yaml`; raises ValueError if `problems()` finds any."""

    def __init__(
        self,
        name: str,
        *,
        method: str,
        url: str,
        headers: dict[str, str],
        query: list[str],
        body: Literal["json", "none"] | None,
        parameters: dict[str, Any] | None,
        effect: Effect,
        idempotent: bool,
        timeout: float,
        max_output: int,
        description: str | None,
    ) -> None:
        self.name = name
        self.method = method.upper()
        self.url = url
        self.headers = dict(headers)
        self.query = list(query)
        self.body: Literal["json", "none"] = body or ("json" if self.method in JSON_BODY_METHODS else "none")
        self.effect: Effect = effect
        self.idempotent = idempotent
        self.timeout = timeout
        self.max_output = max_output
        self.description = description or f"Sends {self.method} {url}"
        self.placeholders = list(dict.fromkeys(_PLACEHOLDER.findall(url)))
        self._in_path = list(dict.fromkeys(_PLACEHOLDER.findall(re.split(r"[?#]", url, maxsplit=1)[0])))
        self.parameters: dict[str, Any] = parameters if parameters is not None else self._default_parameters()
        found = self.problems(url, self.parameters)
        if found:
            raise ValueError(f"tool {name}: " + "; ".join(found))

    def _default_parameters(self) -> dict[str, Any]:
        props: dict[str, Any] = {p: {"type": "string"} for p in self.placeholders}
        props |= {q: {} for q in self.query if q not in props}
        schema: dict[str, Any] = {"type": "object", "properties": props, "required": self.placeholders}
        if self.body == "none":
            schema["additionalProperties"] = False
        return schema

    @staticmethod
    def problems(url: str, parameters: dict[str, Any] | None) -> list[str]:
        """What is wrong with an HTTP tool's `url` and `parameters`, one sentence each; empty when fine."""
        found: list[str] = []
        scheme, _, rest = url.partition("://")
        if scheme not in ("http", "https"):
            found.append(f"url must start with http:// or https://, not {url[:20]!r}")
        elif "{" in re.split(r"[/?#]", rest, maxsplit=1)[0]:
            found.append("url: a placeholder cannot be in the host; the host is fixed by lane.yaml")
        if re.search(r"[{}]", _PLACEHOLDER.sub("", url)):
            found.append("url: a brace that is not a {name} placeholder (names are letters, digits and _)")
        if parameters is None:
            return found
        try:
            Draft202012Validator.check_schema(parameters)
        except SchemaError as exc:
            return [*found, f"parameters: not a JSON Schema: {exc.message}"]
        props, required = parameters.get("properties", {}), parameters.get("required", [])
        for name in dict.fromkeys(_PLACEHOLDER.findall(url)):
            if name not in required:
                found.append(f"url placeholder {{{name}}} must be a required argument: add {name} to parameters.required")
            kind = props.get(name, {}).get("type") if isinstance(props.get(name), dict) else None
            kinds = [kind] if isinstance(kind, str) else kind or []
            if not kinds or not set(kinds) <= SEGMENT_TYPES:
                found.append(f"url placeholder {{{name}}} must be a string or number: set parameters.properties.{name}.type to string")
        return found

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        # `problems()` held at __init__: every placeholder is a required string or number.
        errors = schema_errors(self.parameters, args, root="arguments")
        for name in self._in_path:
            if str(args.get(name)) in ("", ".", ".."):  # would drop or climb a segment once the URL is normalised
                errors.append(f"{name}: {args[name]!r} cannot be a path segment")
        unused = set(args) - set(self.placeholders) - set(self.query)
        if self.body == "none" and unused:
            errors.append(f"{', '.join(sorted(unused))}: not sent ({self.method} {self.name} sends no body)")
        if errors:
            raise ToolArgsInvalid("\n".join(errors))
        return dict(args)

    def subjects(self, args: dict[str, Any]) -> list[str]:
        return [self._url(args, None), *string_arguments(args)]

    def out_of_lane(self, args: dict[str, Any], lane: Lane, project_dir: Path) -> str | None:
        return None  # the host and path are lane.yaml's; arguments only fill quoted segments

    async def invoke(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        args = self.check_args(args)
        env = self._environment()
        headers = {k: _ENV.sub(lambda m: env[m.group(1)], v) for k, v in self.headers.items()}
        headers["Idempotency-Key"] = ctx.idempotency_key
        sent = {k: v for k, v in args.items() if k not in self.placeholders and k not in self.query}
        shown = f"{self.method} {self._url(args, None)}"
        import httpx2  # here: importing it costs a project load that has no HTTP tool

        # The originals are dropped (`from None`): their text and request may hold the secrets.
        try:
            async with asyncio.timeout(self.timeout):  # httpx2's timeout is per read; this bounds the whole call
                return await self._send(self._url(args, env), headers, sent if self.body == "json" else None)
        except (TimeoutError, httpx2.TimeoutException):
            raise ToolError(f"{shown}: no answer within {self.timeout:g} s") from None
        except httpx2.ConnectError as exc:
            raise ToolError(f"{shown}: cannot connect: {_scrub(str(exc), env)}") from None
        except (httpx2.HTTPError, httpx2.InvalidURL, UnicodeEncodeError) as exc:
            raise ToolError(f"{shown}: {_scrub(str(exc) or type(exc).__name__, env)}") from None

    async def _send(self, url: str, headers: dict[str, str], body: dict[str, Any] | None) -> dict[str, Any]:
        import httpx2

        timeout = httpx2.Timeout(self.timeout)
        async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            async with client.stream(self.method, url, headers=headers, json=body) as response:
                async with contextlib.aclosing(response.aiter_bytes()) as chunks:
                    data, truncated = await _read(chunks, self.max_output)
        content_type: str = response.headers.get("content-type", "")
        return {
            "status": response.status_code,
            "ok": response.is_success,
            "content_type": content_type,
            "body": _body(data, content_type, response.charset_encoding, truncated),
            "truncated": truncated,
        }

    def _environment(self) -> dict[str, str]:
        """The variables the URL and headers name; a missing one is an error that says how to set it."""
        names = dict.fromkeys(_ENV.findall(" ".join([self.url, *self.headers.values()])))
        missing = [n for n in names if n not in os.environ]
        if missing:
            raise ToolError(
                f"tool {self.name} reads {', '.join(missing)} from the environment, and it is not set; "
                f"export {' '.join(f'{n}=...' for n in missing)} before running lane"
            )
        return {n: os.environ[n] for n in names}

    def _url(self, args: dict[str, Any], env: dict[str, str] | None) -> str:
        """The URL with its placeholders filled and its query; `env:NAME` kept as it is when env is None."""

        def fill(m: re.Match[str]) -> str:
            if m.group(1):
                return env[m.group(1)] if env is not None else m.group(0)
            name = m.group(2)
            return quote(str(args[name]), safe="") if name in args else m.group(0)

        url = _TOKEN.sub(fill, self.url)
        pairs: list[tuple[str, str]] = []
        for name in self.query:
            if name in args:
                values = args[name] if isinstance(args[name], list) else [args[name]]
                pairs += [(name, _query_value(v)) for v in values]
        return url + ("&" if "?" in url else "?") + urlencode(pairs) if pairs else url


async def _read(chunks: AsyncIterator[bytes], cap: int) -> tuple[bytes, bool]:
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > cap:
            return bytes(data[:cap]), True  # stop reading: the server may send without end
    return bytes(data), False


def _body(data: bytes, content_type: str, charset: str | None, truncated: bool) -> Any:
    media = content_type.split(";")[0].strip().lower()
    if not truncated and (media == "application/json" or media.endswith("+json")):
        with contextlib.suppress(ValueError):
            return json.loads(data)
    try:
        return data.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", errors="replace")


def _query_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)  # true, false, null: as the agent wrote them
    return value if isinstance(value, str) else json.dumps(value)


def _scrub(text: str, env: dict[str, str]) -> str:
    for name, value in env.items():
        if value:
            text = text.replace(value, f"env:{name}")
    return text
