"""The customer database: data/customers.db, built from data/customers.sql when missing."""

import os
import sqlite3
import tempfile
from pathlib import Path

from lane import tool

DATA = Path(__file__).resolve().parent.parent / "data"


def _connect() -> sqlite3.Connection:
    db = DATA / "customers.db"
    if not db.exists():
        handle, name = tempfile.mkstemp(prefix=".customers-", suffix=".db", dir=DATA)
        os.close(handle)
        try:
            with sqlite3.connect(name) as fresh:
                fresh.executescript((DATA / "customers.sql").read_text(encoding="utf-8"))
            fresh.close()
            os.replace(name, db)  # whole or not at all: a crash mid-build leaves no half database
        finally:
            Path(name).unlink(missing_ok=True)
    connection = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
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
