"""The customer database: data/customers.db, built from data/customers.sql when missing."""

import sqlite3
from pathlib import Path

from lane import tool

DATA = Path(__file__).resolve().parent.parent / "data"


def _connect() -> sqlite3.Connection:
    db = DATA / "customers.db"
    if not db.exists():
        building = db.with_suffix(".db.new")
        building.unlink(missing_ok=True)
        with sqlite3.connect(building) as fresh:
            fresh.executescript((DATA / "customers.sql").read_text(encoding="utf-8"))
        fresh.close()
        building.replace(db)  # whole or not at all: a crash mid-build leaves no half database
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    connection.row_factory = sqlite3.Row
    return connection


@tool(effect="read", idempotent=True)
def find_customer(email: str) -> dict[str, object]:
    """Look a customer up by email address: name, company, plan and the support it includes.

    Args:
        email: The customer's email address.
    """
    connection = _connect()
    try:
        row = connection.execute(
            "SELECT c.email, c.name, c.company, c.plan, c.seats, c.customer_since, p.support"
            " FROM customers c JOIN plans p ON p.name = c.plan WHERE c.email = ?",
            (email.strip(),),
        ).fetchone()
    finally:
        connection.close()
    if row is None:
        return {"found": False, "email": email}
    return {"found": True, **dict(row), "first_name": row["name"].split()[0]}
