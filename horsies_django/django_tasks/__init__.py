"""Django's own `django.tasks` API on horsies_django's tables.

`horsies_django.backends.HorsiesBackend` (the `TASKS` backend) enqueues and reads results
through `store`; a worker child, eager mode and `testing.run_pending` run such a task through
`running`; `names` says which rows are such tasks. A `django.tasks` task is an ordinary task row
named `django.tasks:<module path of its function>`, so the worker, the admin, `horsies_status`,
retries, timeouts and the maintenance leader treat it like any other.
"""
