"""The coding track: locks, task runbooks, diff verification, kill dates, session log."""
