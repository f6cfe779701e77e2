#!/bin/sh
# Runs cargo offline in clients/rust against the crate sources Debian packages
# (librust-*-dev, installed under /usr/share/cargo/registry).
#   clients/rust/offline-cargo.sh test
#   clients/rust/offline-cargo.sh run --example e2e -- send_get
set -eu
here=$(cd "$(dirname "$0")" && pwd)
registry=/usr/share/cargo/registry

packages="librust-tokio-postgres-dev librust-tokio-dev librust-serde-json-dev librust-sha2-dev
librust-uuid-dev librust-chrono-dev librust-serde-derive-dev librust-futures-util-dev librust-rand-dev"
missing=""
for package in $packages; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
if [ -n "$missing" ]; then
    echo "offline-cargo.sh: installing$missing" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    # shellcheck disable=SC2086
    $sudo apt-get install -y $missing >&2 || {
        $sudo apt-get update >&2 && $sudo apt-get install -y $missing >&2
    }
fi

config="$here/.cargo/config.toml"
if ! grep -q "$registry" "$config" 2>/dev/null; then
    mkdir -p "$here/.cargo"
    cat > "$config" <<TOML
# Build offline against the crate sources Debian installs (librust-*-dev).
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"

[net]
offline = true
TOML
fi

cd "$here"
# --offline goes before the subcommand so that it never lands after a `--`.
exec cargo --offline "$@"
