#!/bin/sh
# Fuzz for a fixed time: run the hypothesis fuzz suites again and again, each round with a
# fresh random seed and many examples per test, until SECONDS (default 300) have passed.
# Stops at the first failure (hypothesis prints the shrunk input and the seed to replay it).
#   scripts/fuzz.sh [SECONDS] [EXAMPLES_PER_TEST_PER_ROUND]
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-300}
examples=${2:-5000}
suites="tests/classifier/test_fuzz_classifier_parsing.py tests/mail/test_fuzz_message.py
        tests/mail/test_security_header_parsing.py tests/mail/test_message.py
        tests/mail/test_address_properties.py tests/config/test_config_properties.py"
python=${PYTHON:-.venv/bin/python}
end=$(( $(date +%s) + seconds ))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
    round=$((round + 1))
    echo "fuzz round $round ($examples examples per test, $(( end - $(date +%s) )) s left)"
    # shellcheck disable=SC2086
    MILTERFILTERS_FUZZ_EXAMPLES=$examples "$python" -m pytest -q -p no:cacheprovider \
        --hypothesis-seed="$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')" $suites
done
echo "fuzzed for $seconds s in $round rounds: no failure"
