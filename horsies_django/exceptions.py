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


class WorkflowValidationError(HorsiesError, ValueError):
    """A workflow spec breaks authoring rules; `problems` lists each, naming the node and fix."""

    def __init__(self, workflow: str, problems: list[str]) -> None:
        self.workflow = workflow
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"workflow {workflow!r} has {len(problems)} problem(s):\n{lines}")


class TaskFailedError(HorsiesError):
    """A `django.tasks` task's failure that no exception of its own caused: a timeout, a crash,
    a function the worker could not import, a cancel or an expiry. `TaskResult.errors` name this
    class for such a failure; the error's `traceback` is its error code and message."""
