"""The outbox: each sent reply is written as outbox/RUN.eml."""

from email.message import EmailMessage
from pathlib import Path

from lane import ToolContext, tool

OUTBOX = Path(__file__).resolve().parent.parent / "outbox"


@tool(effect="external", idempotent=True)
def send(to: str, subject: str, body: str, ctx: ToolContext) -> dict[str, object]:
    """Send a reply: writes it to outbox/RUN.eml.

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
    path = OUTBOX / f"{ctx.run_id}.eml"
    partial = path.with_suffix(".eml.partial")
    partial.write_bytes(bytes(message))
    partial.replace(path)
    return {"sent": True, "path": f"outbox/{path.name}"}
