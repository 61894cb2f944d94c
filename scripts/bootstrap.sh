#!/usr/bin/env bash
# Create .venv in the checkout and install milterfilters into it (editable).
# Usage: scripts/bootstrap.sh [EXTRA]   e.g. EXTRA=test installs the test tools too.
# pymilter compiles against libmilter: on Debian/Ubuntu, as root, the missing build
# packages are installed with apt; otherwise we say what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"

need=()
[ -e /usr/include/libmilter/mfapi.h ] || need+=(libmilter-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
python3 -c 'import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")) else 1)' \
  || need+=(python3-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need[*]} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "bootstrap: please install these packages first (as root): ${need[*]}" >&2
    echo "  e.g.  sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if [ -n "$extra" ]; then
  .venv/bin/python -m pip install -q -e ".[$extra]"
else
  .venv/bin/python -m pip install -q -e .
fi
