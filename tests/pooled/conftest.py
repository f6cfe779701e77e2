"""These tests need PgBouncer in front of the database: `./dev test` runs them through
`python -m tests.pooler -- pytest tests/pooled ...`; a plain run leaves them out."""

import os

from tests.pooler import POOLER_URL_VARIABLE

collect_ignore_glob = [] if os.environ.get(POOLER_URL_VARIABLE) else ["test_*.py"]
