"""Entry point of ``python -m horsies_django.embedded_pg`` (see :mod:`.cli`)."""

import sys

from horsies_django.embedded_pg.cli import main

if __name__ == "__main__":
    sys.exit(main())
