"""`lane serve`: the HTTP API (and, later, the web console) over a Project, with a worker that executes runs."""
