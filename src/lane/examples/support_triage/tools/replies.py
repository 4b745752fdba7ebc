"""Replies: the writer's topic set into templates/reply.txt with the customer's and the article's facts."""

from pathlib import Path

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from lane import tool

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "reply.txt"


@tool(effect="read", idempotent=True)
def compose(email: dict[str, object], customer: dict[str, object], article: dict[str, object], topic: str) -> dict[str, object]:
    """Write the whole reply from the template.

    Args:
        email: The email being answered (from, name, subject, body).
        customer: The customer record, or {found: false}.
        article: The knowledge-base article, or {found: false}.
        topic: What the customer wrote about, in the writer's words.
    """
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    body = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(email=email, customer=customer, article=article, topic=topic.strip().rstrip("."))
    subject = str(email.get("subject") or "your message")
    return {"to": email["from"], "subject": subject if subject.lower().startswith("re:") else f"Re: {subject}", "body": body}
