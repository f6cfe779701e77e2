"""The harness's tasks (no models: the run records table is created by `records`)."""
