#!/usr/bin/env bash
# Set up posture on a Debian 12 machine, as root or with sudo.
#
#   bash scripts/setup.sh         what posture needs to run (and `posture demo`): Python and a
#                                 virtualenv with posture, nmap, Chromium, CJK fonts
#   bash scripts/setup.sh --dev   that, plus what only the tests need: the servers they start
#                                 (nginx with ModSecurity, gnutls-serv, PHP, sshd, PostgreSQL,
#                                 dnsmasq, Node and the Express app), the dev Python packages
#
# Safe on a server that already runs things: it installs what is missing and nothing else.
# It never starts, stops, enables, disables, masks or reconfigures a service, whether or not
# it installed it (the tests start their own nginx, sshd and PostgreSQL on their own ports
# inside a private network namespace). Safe to run again.
#
# Environment: PYTHON (the interpreter for the virtualenv, default python3);
# POSTURE_LINK_DIR (where to link `posture` so it is on PATH: default /usr/local/bin as root,
# ~/.local/bin otherwise; empty for no link). An existing different file there is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option $arg (usage: bash scripts/setup.sh [--dev])" >&2; exit 2 ;;
  esac
done

# What posture needs to run.
RUNTIME=(
  python3 python3-venv ca-certificates   # Python 3.11 and the virtualenv posture lives in
  nmap                                   # probe ports
  chromium                               # probe social (Playwright drives Debian's Chromium)
  fonts-noto-cjk fontconfig              # Traditional Chinese in the evidence report
)
# What only the tests need.
DEV_ONLY=(
  dnsmasq-base                           # the tests' loopback DNS server
  nginx libnginx-mod-http-modsecurity modsecurity-crs   # legacy-TLS server and a real WAF in tests
  gnutls-bin                             # gnutls-serv offers RC4/3DES in tests
  php-cli                                # leak tests: PHP built-in server
  openssh-server                         # ports tests: a real sshd banner
  postgresql                             # storage tests beside SQLite
  iproute2 util-linux                    # ip, unshare: tests run in a private network namespace
  systemd                                # systemd-analyze verify/security for the units
  prometheus                             # metrics tests: a real Prometheus (and promtool) scrapes posture run
)
PACKAGES=("${RUNTIME[@]}")
if [ "$DEV" = 1 ]; then PACKAGES+=("${DEV_ONLY[@]}"); fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$DEV" = 1 ]; then
  # Node may come from elsewhere than Debian (NodeSource's nodejs carries npm): look for the commands.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ ${#SUDO[@]} -gt 0 ] && ! command -v sudo >/dev/null 2>&1; then
    echo "setup: ${missing[*]} missing, and installing them needs root or sudo" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
if [ "$DEV" = 1 ]; then
  .venv/bin/pip install -q -e '.[dev]'
else
  .venv/bin/pip install -q -e .
fi
# Bytecode for posture's own modules (pip compiled the dependencies'): a process that cannot
# write __pycache__ (PYTHONDONTWRITEBYTECODE, a read-only checkout) would otherwise compile
# them from source at every start (a scan: about 0.1 s more CPU, 0.4 s more wall on a busy machine).
.venv/bin/python -m compileall -q agent probes schedules state vocab >/dev/null

if [ "$DEV" = 1 ] && [ -f tests/support/express_app/package.json ] \
    && [ ! -d tests/support/express_app/node_modules ]; then
  (cd tests/support/express_app && npm ci --silent --no-audit --no-fund)
fi

# `posture` on PATH, as the README and the demo's hints write it; never over someone else's file.
target="$PWD/.venv/bin/posture"
if [ "$(id -u)" = 0 ]; then default_dir=/usr/local/bin; else default_dir="${HOME:-/nonexistent}/.local/bin"; fi
link_dir=${POSTURE_LINK_DIR-$default_dir}
if [ -n "$link_dir" ]; then
  link="$link_dir/posture"
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
    :
  elif [ -L "$link" ] && [ ! -e "$link" ] && [[ "$(readlink "$link")" == */bin/posture ]]; then
    ln -sfn "$target" "$link"          # a link to a posture checkout that is gone
    echo "setup: $link now points at $target"
  elif [ -e "$link" ] || [ -L "$link" ]; then
    echo "setup: $link is another posture (or another program): left alone; use $target"
  elif mkdir -p "$link_dir" 2>/dev/null && ln -s "$target" "$link" 2>/dev/null; then
    echo "setup: linked $link -> $target"
  else
    echo "setup: could not link $link; use $target"
  fi
fi
on_path=$(command -v posture 2>/dev/null || true)
if [ -z "$on_path" ]; then
  echo "setup: \`posture\` is not on PATH here; run it as $target"
elif [ "$(readlink -f "$on_path")" != "$(readlink -f "$target")" ]; then
  echo "setup: \`posture\` on PATH is $on_path, not this checkout's; run this one as $target"
fi
echo "setup: done ($(.venv/bin/python --version), posture $(.venv/bin/posture --version | cut -d' ' -f2))"
