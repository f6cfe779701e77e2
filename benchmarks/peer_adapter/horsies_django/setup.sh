#!/usr/bin/env bash
# Build /tmp/bench-venvs/horsies_django: the pins in requirements.txt plus this repository as a
# local path install. The generated requirements file carries a hash of the package sources, so
# mkvenv.sh's stamp changes (and the venv is rebuilt) whenever horsies_django/ changes.
# ADAPTER_VENV names the venv (the horsies_django_tasks adapter builds its own from here).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
LIB=${BENCH_LIB:-/work/shared/bench/lib}
SRC_HASH=$(cd "$REPO" && { find horsies_django -type f \( -name '*.py' -o -name '*.sql' \) -print0 \
    | sort -z | xargs -0 sha1sum; sha1sum pyproject.toml; } | sha1sum | cut -c1-16)
mkdir -p /tmp/bench-venvs
VENV=${ADAPTER_VENV:-horsies_django}
GEN=/tmp/bench-venvs/$VENV.requirements.txt
{
    cat "$HERE/requirements.txt"
    echo "# horsies-django sources: $REPO (content hash $SRC_HASH)"
    echo "horsies-django @ file://$REPO"
} > "$GEN"
exec "$LIB/mkvenv.sh" "$VENV" "${PY_312:-3.12}" "$GEN"
