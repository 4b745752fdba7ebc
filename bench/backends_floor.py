"""The Temporal floor of bench/backends.py: the Temporal Python SDK's minimal workflow, a chain of activities.

Apart from backends.py because Temporal's workflow sandbox imports a workflow's module afresh
and runs its top level: this one holds only the workflow and its activity.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="floor-echo")
async def echo(n: int) -> int:
    """Does nothing but return its input."""
    return n


@workflow.defn(name="floor")
class Floor:
    """`activities` activities in sequence, each handed the last one's answer plus one; answers the count."""

    @workflow.run
    async def run(self, activities: int) -> int:
        n = 0
        for _ in range(activities):
            n = await workflow.execute_activity(echo, n + 1, start_to_close_timeout=timedelta(minutes=5))
        return n
