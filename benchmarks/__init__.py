"""horsies_django's own benchmark (not part of the test suite); run `python benchmarks/run.py`."""
