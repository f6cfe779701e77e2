"""Building blocks of `manage.py horsies_demo`: the scenario, its display, its subprocesses."""
