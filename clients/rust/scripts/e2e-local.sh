#!/bin/bash
# Runs every e2e scenario of examples/e2e.rs against a throwaway PostgreSQL with a worker of
# the test app (tests.settings). A manual check; the Python suite runs the scenarios itself.
#   clients/rust/scripts/e2e-local.sh
set -u
repo=$(cd "$(dirname "$0")/../../.." && pwd)
py=$repo/.venv/bin/python
if [ -z "${DATABASE_URL:-}" ]; then
    "$repo/clients/rust/offline-cargo.sh" build --example e2e || exit 1
    cd "$repo" && exec "$py" -m horsies_django.embedded_pg run -- "$0"
fi
cd "$repo"
export DJANGO_SETTINGS_MODULE=tests.settings
"$py" -m django migrate -v0 || exit 1
"$py" -m django horsies_worker --processes 2 > /tmp/horsies-rust-e2e-worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT
sleep 3
e2e=$repo/clients/rust/target/debug/examples/e2e
for scenario in send_get task_error unhandled schedule expired unknown_task bad_args info; do
    echo "== $scenario"
    timeout 60 "$e2e" "$scenario"
done
echo "== send_many_timing 200"
timeout 120 "$e2e" send_many_timing 200
echo "== outage"
coproc E2E { timeout 60 "$e2e" outage; }
read -r line <&"${E2E[0]}"; echo "$line"
read -r line <&"${E2E[0]}"; echo "$line"
pid=$(echo "$line" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["backend_pid"])')
"$py" -c "
import os, psycopg
with psycopg.connect(os.environ['DATABASE_URL'], autocommit=True) as c:
    print('terminated backend', $pid, c.execute('SELECT pg_terminate_backend(%s)', ($pid,)).fetchone()[0])
"
echo go >&"${E2E[1]}"
while read -r line <&"${E2E[0]}"; do echo "$line"; done
