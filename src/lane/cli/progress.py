"""Live progress for `lane run` and `lane resume` on a terminal: which step, what it waits for, tokens, time.

Fed by journal events as they are recorded; drawn by Rich's refresh thread, so the
clock keeps moving while a local model generates on the main thread. Off when
output is not a terminal, with --json, or with --quiet.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner

from lane.store.records import Event


class RunProgress:
    def __init__(self, console: Console, *, label: str = "", step_lines: bool = True) -> None:
        self.console = console
        self.label = label  # what this run is about, such as the email's file
        self.step_lines = step_lines  # print a line as each step ends
        self.began = time.monotonic()
        self.step_began = self.began
        self.step = ""
        self.doing = "starting"
        self.tokens = 0
        self.streamed = 0  # pieces of the reply in progress
        self.tail = ""
        self._spinner = Spinner("dots")
        self._live = Live(self, console=console, refresh_per_second=8, transient=True)

    def __enter__(self) -> RunProgress:
        self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._live.__exit__(kind, exc, tb)

    def __rich__(self) -> RenderableType:
        now = time.monotonic()
        step = f"[bold]{escape(self.label)}[/] · " if self.label else ""
        step += f"step [bold]{escape(self.step)}[/] · " if self.step else ""
        doing = f"{self.doing}: the model is writing, {self.streamed} tokens out · {self.tail!r}" if self.streamed else self.doing
        self._spinner.update(text=f"{step}{escape(doing)} · {self.tokens} tokens · {now - self.step_began:.1f} s (run {now - self.began:.1f} s)")
        return self._spinner

    def on_stream(self, piece: str) -> None:
        self.streamed += 1
        self.tail = (self.tail + piece).replace("\n", " ")[-40:]

    def on_event(self, event: Event) -> None:
        kind, data = event.type, event.data
        if kind in ("model_called", "model_responded", "model_failed"):
            self.streamed, self.tail = 0, ""
        if kind == "step_started":
            self.step, self.doing, self.step_began = event.step_id or "", f"{data.get('kind', '')} step", time.monotonic()
        elif kind == "model_called":
            self.doing = f"waiting for {data.get('model')} ({event.ref})"
        elif kind == "model_responded":
            usage = data.get("response", {}).get("usage", {})
            self.tokens += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
            self.doing = "read the model's reply"
        elif kind == "model_failed":
            again = f"; trying again in {data['retry_in']:g} s" if data.get("retry_in") is not None else ""
            self.console.print(f"  [yellow]{escape(str(data.get('error')))}[/]{escape(again)}")
            self.doing = "waiting to try the model again" if again else "model failed"
        elif kind == "tool_started":
            self.doing = f"running {event.ref}"
        elif kind == "step_skipped" and self.step_lines:
            self.step_began = time.monotonic()
            self.console.print(f"  {escape(event.step_id or '')} [dim]skipped[/]")
        elif kind in ("step_finished", "step_failed") and self.step_lines:
            mark = "[green]done[/]" if kind == "step_finished" else "[red]failed[/]"
            self.console.print(f"  {escape(event.step_id or '')} {mark} {time.monotonic() - self.step_began:.1f} s")
