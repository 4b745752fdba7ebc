"""`engine: temporal`: each run is a Temporal workflow, executed by `lane worker` processes.

A run goes in stretches: from its start (or a `lane resume`, `lane retry`) to where it pauses, stops
or ends. Each stretch is one activity that runs lane's own engine on a worker against the run's
journal in the store, so rules, autonomy, budgets, approvals and the journal's
nothing-twice rule hold exactly as on the local engine. Between stretches the workflow waits, at no
cost, for the update that wakes it. A worker that dies stops heartbeating; Temporal gives the
activity to another worker, which takes the run up from its journal as `lane resume` would.

workflow.py is the workflow (deterministic: it imports nothing of lane's engine), worker.py the
activity and `lane worker`, client.py what `lane run` and `lane resume` send.
"""
