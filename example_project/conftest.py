"""The example project's pytest setup: horsies_django's fixtures, as the testing docs show."""

pytest_plugins = ["horsies_django.pytest_plugin"]
