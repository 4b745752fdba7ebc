"""The outbox: replies are written as files, one per run."""

from pathlib import Path

from lane import ToolContext, tool

OUTBOX = Path(__file__).resolve().parent.parent / "outbox"


@tool(effect="external", idempotent=True)
def send(to: str, body: str, ctx: ToolContext) -> dict[str, object]:
    """Send a reply: writes it to outbox/RUN.txt.

    Args:
        to: The address to reply to.
        body: The text of the reply.
    """
    OUTBOX.mkdir(exist_ok=True)
    path = OUTBOX / f"{ctx.run_id}.txt"
    # The idempotency key makes a retried send write the same file once.
    path.write_text(f"To: {to}\nIdempotency-Key: {ctx.idempotency_key}\n\n{body}\n")
    return {"sent": True, "path": f"outbox/{path.name}"}
