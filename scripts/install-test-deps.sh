#!/bin/bash
# Install what the end-to-end tests (tests/e2e) need on Debian 12, as root. Idempotent.
#
#   scripts/install-test-deps.sh                 apt packages + unpacked Sendmail (default location)
#   scripts/install-test-deps.sh --sendmail DIR  only unpack Sendmail into DIR (what the test fixture calls)
#
# Postfix is installed with debconf "No configuration": /etc/postfix/main.cf stays absent and the
# system instance is never started; the tests run private instances on loopback.
# Sendmail's package conflicts with Postfix, so it is not installed: its .debs are downloaded into a
# cache and unpacked into a folder (default /var/cache/milterfilters-test/sendmail/root, or
# $MILTERFILTERS_SENDMAIL_ROOT), from where the tests run it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

SENDMAIL_ROOT=${MILTERFILTERS_SENDMAIL_ROOT:-/var/cache/milterfilters-test/sendmail/root}
APT_PACKAGES=(
    postfix           # the MTA under test (private instances)
    libmilter-dev     # pymilter builds against libmilter
    gcc python3-dev python3-venv
    sasl2-bin libsasl2-modules libsasl2-modules-db   # saslpasswd2, sasldb, PLAIN/LOGIN for AUTH tests
    m4                # builds sendmail.cf from the .mc
    redis-server      # shared rate-limit counters (a real server per test)
    # what the unpacked sendmail-bin needs (its Depends, less sendmail-base/-cf)
    libdb5.3 libldap-2.5-0 liblockfile1 libnsl2 libsasl2-2 libssl3 libwrap0 procps
    util-linux        # unshare, mount (private mount namespace for Sendmail)
)

missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || echo "$pkg"
    done
}

apt_install() {
    local missing
    missing=$(missing_packages "$@")
    [ -z "$missing" ] && return 0
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    echo "postfix postfix/mailname string test.invalid" | debconf-set-selections
    # shellcheck disable=SC2086
    apt-get install -y --no-install-recommends $missing || { apt-get update -q && apt-get install -y --no-install-recommends $missing; }
}

unpack_sendmail() {
    local root=$1 cache tmp deb
    # Cyrus SASL looks for Sendmail.conf in /usr/lib/sasl2; the tests bind-mount their own folder there
    mkdir -p /usr/lib/sasl2
    [ -x "$root/usr/libexec/sendmail/sendmail" ] && [ -d "$root/usr/share/sendmail/cf/m4" ] && return 0
    cache=$(dirname "$root")/debs
    mkdir -p "$cache"
    if ! ls "$cache"/sendmail-bin_*.deb "$cache"/sendmail-base_*.deb "$cache"/sendmail-cf_*.deb >/dev/null 2>&1; then
        # apt's sandbox user may not write into the cache folder: the download then runs as root
        (cd "$cache" && { apt-get download sendmail-bin sendmail-base sendmail-cf 2>/dev/null ||
            { apt-get update -q && apt-get download sendmail-bin sendmail-base sendmail-cf; }; })
    fi
    # unpack beside the target and rename, so a concurrent run never sees half a tree
    tmp=$(mktemp -d "$root.XXXXXX")
    for deb in "$cache"/sendmail-bin_*.deb "$cache"/sendmail-base_*.deb "$cache"/sendmail-cf_*.deb; do
        dpkg-deb -x "$deb" "$tmp"
    done
    chmod 755 "$tmp"
    if mv -T "$tmp" "$root" 2>/dev/null; then
        echo "sendmail unpacked into $root"
    else
        rm -rf "$tmp"  # another run got there first
    fi
}

if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps.sh: must run as root (apt-get, mount namespaces)" >&2
    exit 1
fi

if [ "${1:-}" = "--sendmail" ]; then
    unpack_sendmail "${2:-$SENDMAIL_ROOT}"
    exit 0
fi

apt_install "${APT_PACKAGES[@]}"
unpack_sendmail "$SENDMAIL_ROOT"
