"""Send `faults.work` tasks through the public API from a separate process.

Usage: DATABASE_URL=... python -m tests.faults.send_tasks COUNT LEDGER_PATH [once]
(for tests whose database is a dedicated server, not the test process's own). With `once`,
`faults.once` tasks are sent instead: no sleep, and no retry policy.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    count, ledger = int(argv[0]), argv[1]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.faults.settings")
    import django

    django.setup()
    from tests.faults.tasks import once, work

    if argv[2:] == ["once"]:
        results = once.send_many([{"i": i, "path": ledger} for i in range(count)])
    else:
        results = work.send_many([{"i": i, "path": ledger, "seconds": 0.01} for i in range(count)])
    failed = [r for r in results if r.is_err()]
    if failed:
        print(f"{len(failed)} send(s) failed: {failed[0]}", file=sys.stderr)
        return 1
    print(f"sent {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
