#!/usr/bin/env bash
# Install milterfilters into .venv and run the milter in the foreground with the embedded
# default configuration and the shipped model. Extra arguments go to `milterfilters run`,
# e.g.  scripts/run-milter.sh --config /etc/milterfilters.toml
# Without --socket or --config it listens on the unix socket run/milter.sock (or
# $MILTERFILTERS_SOCKET): over loopback TCP every message waits ~45 ms for Postfix's
# Nagle/delayed-ACK exchange, which the milter cannot remove from its side (README, Workers).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
for arg in "$@"; do
    case "$arg" in --socket|--socket=*|--config|--config=*|-c) exec .venv/bin/milterfilters run "$@" ;; esac
done
socket="${MILTERFILTERS_SOCKET:-$PWD/run/milter.sock}"
mkdir -p "$(dirname "$socket")"
exec .venv/bin/milterfilters run --socket "unix:$socket" "$@"
