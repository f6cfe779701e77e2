"""Exceptions for programming mistakes, raised at import or start-up (never on the hot path)."""


class HorsiesError(Exception):
    """Base class of horsies_django's exceptions."""


class TaskDefinitionError(HorsiesError, TypeError):
    """A `@app.task` declaration breaks a registration rule; the message names the fix."""


class ConfigurationError(HorsiesError):
    """`settings.HORSIES` or the database configuration is unusable; the message names the fix."""


class EncodingError(HorsiesError, ValueError):
    """A value cannot be stored as strict JSON."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path
