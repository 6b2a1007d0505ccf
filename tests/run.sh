#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs the system packages and Python test
# dependencies it needs, then runs ruff and pytest. Tests start their own servers on loopback ports.
# .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# System packages the tests use: libsndfile (audio I/O). (espeak-ng + sox only regenerate the built-in set.)
pkgs=(libsndfile1)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

EDGEBENCH_EXTRAS=test bash install.sh
.venv/bin/ruff check .
# Tests never touch the network or the user's stores.
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest -q "$@"
