#!/usr/bin/env sh
# Installs what xvpn needs on a fresh machine: Deno and the npm packages (npm ci), and, as root,
# the system tools the demo and the root tests use. Safe to run again: it skips what is there.
set -eu
cd "$(dirname "$0")/.."

if [ ! -x node_modules/.bin/deno ] || [ package-lock.json -nt node_modules/.bin/deno ]; then
  echo "setup: installing Deno and npm packages (npm ci)..."
  npm ci --no-audit --no-fund --loglevel=error
fi

# Debian package -> a file it provides. gcc and the headers: tests/wintun_root_test.ts compiles
# the fake wintun (tests/support/fakewintun/); systemd: systemd-analyze, which
# tests/systemd_test.ts runs on systemd/*.service.
need=""
for pair in iproute2:/usr/sbin/ip iputils-ping:/usr/bin/ping tcpdump:/usr/bin/tcpdump \
  nftables:/usr/sbin/nft iperf3:/usr/bin/iperf3 procps:/usr/bin/pgrep \
  libsodium23:/usr/lib/x86_64-linux-gnu/libsodium.so.23 \
  gcc:/usr/bin/gcc libc6-dev:/usr/include/stdio.h linux-libc-dev:/usr/include/linux/if_tun.h \
  systemd:/usr/bin/systemd-analyze; do
  pkg=${pair%%:*}
  file=${pair#*:}
  if [ ! -e "$file" ] && ! dpkg -s "$pkg" >/dev/null 2>&1; then need="$need $pkg"; fi
done
if [ -n "$need" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing$need (apt-get)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq $need >/dev/null
  else
    echo "setup: missing system packages:$need (install them as root; root-only tests and the demo need them)"
  fi
fi
# The deno shim runs the platform binary; make sure it is there and runs.
node_modules/.bin/deno --version >/dev/null
