#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs the system packages and Python test
# dependencies it needs, then runs ruff and pytest. Tests start their own servers on loopback ports.
# .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

# System packages the tests use: libsndfile (audio I/O); the servers the streaming tests start on free
# loopback ports (tests/servers.py): mosquitto (+ mosquitto_passwd, clients), InfluxDB 1.x,
# VictoriaMetrics, openssl for the broker's test CA; openssh-server (sshd of the test device the Ansible
# tests start in a network namespace), powertop and iproute2 (what the agent role expects on a device);
# qemu-user-static, binfmt-support and debootstrap for the emulated Raspberry Pi 5 (tests/emulated_pi.py:
# its arm64 root filesystem is built once and cached in /var/cache/edgebench-tests).
# chromium (headless) renders the HTML report and screenshots it (tests/test_report.py).
# (espeak-ng + sox only regenerate the built-in set.)
pkgs=(libsndfile1 mosquitto mosquitto-clients influxdb victoria-metrics openssl openssh-server powertop iproute2
      qemu-user-static binfmt-support debootstrap chromium)
services=(mosquitto:mosquitto influxdb:influxdb victoria-metrics:victoria-metrics openssh-server:ssh)  # package:service
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  # The tests run their own servers; keep the packages' system-wide ones from starting (and holding
  # ports/CPU): policy-rc.d exit 101 = "do not start" for invoke-rc.d/deb-systemd-invoke.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    added_policy=1
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT  # also when apt-get fails
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ -n "$added_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
  # Belt and braces, only for services this run installed (never stop a server someone runs on purpose).
  for entry in "${services[@]}"; do
    pkg=${entry%%:*} s=${entry#*:}
    if [[ " ${missing[*]} " == *" $pkg "* ]]; then
      $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || $SUDO service "$s" stop >/dev/null 2>&1 || true
    fi
  done
fi

EDGEBENCH_EXTRAS=test EDGEBENCH_CONVERTER=1 bash install.sh
# torch -> .tflite conversion for the LiteRT tests runs in the converter environment (see install.sh).
export EDGEBENCH_LITERT_PYTHON="$PWD/.venv-litert/bin/python"
.venv/bin/ruff check .
# Tests never touch the network or the user's stores.
export HF_HUB_OFFLINE=1
# Everything a test needs is installed above: a missing prerequisite fails instead of skipping (conftest).
export EDGEBENCH_TESTS_REQUIRE_ALL=1
# --durations: the slowest tests, so that a slow machine's CI log says where the time went.
exec .venv/bin/python -m pytest -q --durations=25 "$@"
