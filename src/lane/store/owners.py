"""Who executes a run: an owner string names a process (host, pid, and a token per Project), and whether it lives."""

from __future__ import annotations

import os
import socket
from pathlib import Path

HOST = socket.gethostname()


def process_owner(token: str) -> str:
    return f"{HOST}:{os.getpid()}:{token}"


def alive(owner: str) -> bool:
    """Whether the process named by an owner string still runs on this host (another host's: assumed alive)."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != HOST or not pid_text.isdigit():
        return True  # another machine: assume alive; its owner must release it
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def alive_here(owner: str) -> bool:
    """Whether the owner is another process of this host, still running (not this process: whether one of its
    stores still executes the run, that store's lease says)."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    return host == HOST and pid_text.isdigit() and int(pid_text) != os.getpid() and alive(owner)
