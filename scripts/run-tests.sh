#!/usr/bin/env bash
# Install what the tests need (apt packages for the real Postfix/Sendmail/DNS/Redis
# end-to-end tests when root, and the Python test tools in .venv) and run the test suite.
# Extra arguments go to pytest. Fails if no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x scripts/install-test-deps.sh ]; then
  scripts/install-test-deps.sh
fi
scripts/bootstrap.sh test
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "run-tests: no tests were collected" >&2
  exit 1
fi
exit "$status"
