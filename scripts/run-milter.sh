#!/usr/bin/env bash
# Install milterfilters into .venv and run the milter in the foreground with the embedded
# default configuration and the shipped model. Extra arguments go to `milterfilters run`,
# e.g.  scripts/run-milter.sh --config /etc/milterfilters.toml
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/milterfilters run "$@"
