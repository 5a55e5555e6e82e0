#!/bin/bash
# Install what building and testing jobq needs on Debian bookworm, if missing.
# Safe to run again: it only installs what is absent.  Needs root (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential postgresql-15 postgresql-server-dev-15 postgresql-contrib
  libcurl4-openssl-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
  postgresql-15-cron libipc-run-perl
  libpq-dev libwebsockets-dev libjwt-dev libjansson-dev pkg-config chromium
)
# Node.js may come from elsewhere (NodeSource); only ask apt when absent.
command -v node >/dev/null && command -v npm >/dev/null || APT_PACKAGES+=(nodejs npm)

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

# Debian's postgresql package creates a cluster and starts it; the tests use
# their own throwaway clusters, so leave it alone.

# Node packages the test suites use (blob stores, HTTP/WS clients, parsers).
if [ -f test/package.json ] && [ ! -d test/node_modules ]; then
  echo "deps: npm ci in test/"
  (cd test && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ -f gateway/test/package.json ] && [ ! -d gateway/test/node_modules ]; then
  echo "deps: npm ci in gateway/test/"
  (cd gateway/test && npm ci --no-audit --no-fund --loglevel=error)
fi

# Build and install the extension into the server's directories, and the
# example external worker the tests run.
make -s
$SUDO make -s install >/dev/null
make -s -C examples
