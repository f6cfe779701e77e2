"""The harness's no-op task as a `django.tasks` task, for the horsies_django_tasks adapter (run by
horsies_worker through `horsies_django.backends.HorsiesBackend`)."""

from django.tasks import task


@task
def noop(i: int) -> None:
    return None
