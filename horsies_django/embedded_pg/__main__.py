"""Entry point of ``python -m horsies_django.embedded_pg``."""

import sys

from horsies_django.embedded_pg.postmaster import main

if __name__ == "__main__":
    sys.exit(main())
