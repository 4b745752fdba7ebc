"""Feedback: how a runbook's success is measured (KPIs per run, summarised across runs)."""
