"""Console sessions: a sign-in makes a session (an HttpOnly, SameSite=Strict cookie) with its own CSRF token.

Sessions live in the server's memory and expire; a restart signs everyone out. Sign-ins are rate-limited
per client address. `lane serve` on loopback issues one one-time sign-in link, as Jupyter does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

LOCAL = "local"  # the person a loopback sign-in link signs in when lane.yaml names no people: every human role
SESSION_SECONDS = 12 * 3600
ATTEMPTS = 10  # sign-ins per client address per minute


@dataclass
class Session:
    person: str
    csrf: str
    expires: float
    message: str = ""  # what the last form did, shown once on the page it leads to (never taken from an address)
    failed: bool = False

    def say(self, message: str, *, failed: bool = False) -> None:
        self.message, self.failed = message, failed

    def said(self) -> dict[str, Any]:
        """The message to show now, once."""
        shown = {"message": self.message, "failed": self.failed}
        self.message, self.failed = "", False
        return shown


@dataclass
class Sessions:
    by_id: dict[str, Session] = field(default_factory=dict)
    codes: dict[str, str] = field(default_factory=dict)  # one-time sign-in code -> person
    attempts: dict[str, list[float]] = field(default_factory=dict)
    lifetime: float = SESSION_SECONDS

    def open(self, person: str) -> tuple[str, Session]:
        session_id = os.urandom(24).hex()
        session = self.by_id[session_id] = Session(person, os.urandom(16).hex(), time.monotonic() + self.lifetime)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        session = self.by_id.get(session_id or "")
        if session is None:
            return None
        if session.expires < time.monotonic():
            del self.by_id[session_id or ""]
            return None
        return session

    def close(self, session_id: str | None) -> None:
        self.by_id.pop(session_id or "", None)

    def one_time(self, person: str) -> str:
        code = os.urandom(24).hex()
        self.codes[code] = person
        return code

    def redeem(self, code: str) -> str | None:
        return self.codes.pop(code, None)

    def allowed(self, client: str) -> bool:
        """Whether `client` may try to sign in now (at most ATTEMPTS a minute)."""
        now = time.monotonic()
        recent = [t for t in self.attempts.get(client, []) if now - t < 60]
        recent.append(now)
        self.attempts[client] = recent
        return len(recent) <= ATTEMPTS
