"""A tiny customer database for the example."""

import json
from pathlib import Path

from lane import tool

DATA = Path(__file__).resolve().parent.parent / "data" / "customers.json"


@tool(effect="read", idempotent=True)
def find_customer(email: str) -> dict[str, object]:
    """Look a customer up by email address.

    Args:
        email: The customer's email address.
    """
    customers: dict[str, dict[str, object]] = json.loads(DATA.read_text())
    return customers.get(email.lower(), {"found": False})
