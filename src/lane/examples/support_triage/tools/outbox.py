"""The outbox: each sent reply is written as outbox/RUN.eml (outbox/RUN-each-2.eml for email 2 of a for_each)."""

import re
from email.message import EmailMessage
from pathlib import Path

from lane import ToolContext, tool

OUTBOX = Path(__file__).resolve().parent.parent / "outbox"


@tool(effect="external", idempotent=True)
def send(to: str, subject: str, body: str, ctx: ToolContext) -> dict[str, object]:
    """Send a reply: writes it to the outbox folder.

    Args:
        to: The address to reply to.
        subject: The reply's subject line.
        body: The text of the reply.
    """
    message = EmailMessage()
    message["From"] = "support@acme.example"
    message["To"] = to
    message["Subject"] = subject
    message["Idempotency-Key"] = ctx.idempotency_key  # a retried send writes the same file once
    message.set_content(body)
    OUTBOX.mkdir(exist_ok=True)
    group = ctx.step_id.rpartition(".")[0]  # a send inside a for_each item: one file per item
    name = ctx.run_id if not group else f"{ctx.run_id}-{re.sub(r'[^A-Za-z0-9]+', '-', group).strip('-')}"
    path = OUTBOX / f"{name}.eml"
    partial = path.with_suffix(".eml.partial")
    partial.write_bytes(bytes(message))
    partial.replace(path)
    return {"sent": True, "path": f"outbox/{path.name}"}
