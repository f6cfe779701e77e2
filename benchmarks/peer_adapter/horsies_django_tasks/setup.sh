#!/usr/bin/env bash
# The same venv recipe as the horsies_django adapter, under this adapter's name.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ADAPTER_VENV=horsies_django_tasks exec "$HERE/../horsies_django/setup.sh"
