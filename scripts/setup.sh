#!/usr/bin/env bash
# Set up posture on a fresh Debian 12 machine: system packages, a virtualenv with
# posture and its test tools, and the Express app the leak tests run.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  python3 python3-venv python3-pip ca-certificates
  nmap                                   # probe ports
  dnsmasq-base                           # the tests' loopback DNS server
  nginx libnginx-mod-http-modsecurity modsecurity-crs   # legacy-TLS server and a real WAF in tests
  gnutls-bin                             # gnutls-serv offers RC4/3DES in tests
  chromium                               # probe social (Playwright drives Debian's Chromium)
  fonts-noto-cjk                         # Traditional Chinese in the evidence report's PDF
  php-cli                                # leak tests: PHP built-in server
  openssh-server                         # ports tests: a real sshd banner
  postgresql                             # storage tests beside SQLite
  iproute2 util-linux                    # ip, unshare: tests run in a private network namespace
  systemd                                # systemd-analyze verify/security for the units
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian enables these on install; posture's tests start their own instances.
for svc in nginx ssh postgresql; do
  $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
done

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -e '.[dev]'

if [ -f tests/support/express_app/package.json ] && [ ! -d tests/support/express_app/node_modules ]; then
  (cd tests/support/express_app && npm ci --silent --no-audit --no-fund)
fi
echo "setup: done ($(.venv/bin/python --version), posture $(.venv/bin/posture --version | cut -d' ' -f2))"
