"""A task module whose own import is broken: discovery must not hide the error (test_registry)."""

import tests.testapp.this_module_does_not_exist  # type: ignore[import-not-found]  # noqa: F401
