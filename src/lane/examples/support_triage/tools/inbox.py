"""The inbox: one support email per .eml file in inbox/."""

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from pathlib import Path

from lane import tool

ROOT = Path(__file__).resolve().parent.parent
INBOX = ROOT / "inbox"


@tool(effect="read", idempotent=True)
def read(path: str) -> dict[str, object]:
    """Read one email from the inbox: who sent it, its subject and its text.

    Args:
        path: The email's file, such as inbox/01-double-charge.eml.
    """
    file = (ROOT / path).resolve()
    if not file.is_relative_to(INBOX):
        raise ValueError(f"{path} is not in the inbox folder; give a path like inbox/NAME.eml")
    if not file.is_file():
        raise ValueError(f"there is no file {path}")
    message = BytesParser(policy=policy.default).parsebytes(file.read_bytes())
    assert isinstance(message, EmailMessage)
    name, address = parseaddr(str(message.get("From", "")))
    if "@" not in address:
        raise ValueError(f"{path} has no sender: an email file needs a 'From: Name <address>' header line, then a blank line and the text")
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        raise ValueError(f"{path} has no plain-text part (only HTML or attachments); save it as plain text")
    try:
        body = str(part.get_content()).strip()
    except (LookupError, UnicodeError) as exc:
        raise ValueError(f"{path}: its text cannot be decoded ({exc}); save it as UTF-8") from None
    if not body:
        raise ValueError(f"{path} has no text after its headers; write the message after a blank line")
    return {"from": address.lower(), "name": name, "subject": str(message.get("Subject", "")).strip(), "body": body}


@tool(effect="read", idempotent=True)
def emails() -> list[str]:
    """List the emails waiting in the inbox, oldest name first, as paths to give inbox.read."""
    return [f"inbox/{file.name}" for file in sorted(INBOX.glob("*.eml"))]
